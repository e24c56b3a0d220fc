"""Operating the bot: metrics (`metrics`), the health endpoints (`health`, `server`) and
structured logs (`logs`). `logs` imports nothing heavy: the engine uses it on every request."""
