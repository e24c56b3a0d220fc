"""Generation apart from the bot, over the OpenAI-compatible HTTP API: the model server on Ray
Serve (`app`, `cli`, `server`, `metrics`: need the `serve` extra) and the bot's `openai` backend
that talks to it or to any compatible server (`openai_backend`, `protocol`: no Ray needed)."""
