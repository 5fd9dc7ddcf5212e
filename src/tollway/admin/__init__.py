"""The management surface: health now; keys, projects, spend and audit later."""
