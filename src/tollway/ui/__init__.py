"""The admin UI at ``/ui``: pages and assets shipped in this package (no CDN, no build
step), sessions that sign a person in with the master key, an admin key or OIDC, and
the security headers every UI response carries."""
