"""Cross-cutting protections: redaction, HTTP headers, CSRF, permissions."""
