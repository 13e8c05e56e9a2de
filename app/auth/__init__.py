"""Identity: password hashing and policy, login lockout, sessions with rotating refresh tokens, API keys,
rate limiting and the admin bootstrap. HTTP handlers live in ``app.api.auth_routes`` / ``app.api.api_keys``;
the route dependencies (``jwt_only``, ``scoped``) in ``app.api.auth``. Decisions: docs/security.md.
"""
