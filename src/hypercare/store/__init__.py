"""The store: SQLAlchemy 2 async engine on SQLite (embedded default) or PostgreSQL."""
