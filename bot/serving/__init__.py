"""Generation apart from the bot: the model server on Ray Serve (`app`, `cli`: needs the `serve`
extra) and the bot's `remote` backend that talks to it (`remote`, `wire`: no Ray needed)."""
