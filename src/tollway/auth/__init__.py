"""Who is calling: credentials from request headers."""
