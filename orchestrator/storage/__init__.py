"""The run database: one connection type over SQLite and Postgres, and the checkpointer."""
