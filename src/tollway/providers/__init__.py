"""Upstream providers behind one small interface (see ``base.Provider``)."""
