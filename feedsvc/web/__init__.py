"""HTTP: the bare WSGI fast path for pre-built documents, the Flask views for the rest, one function for conditional requests."""
