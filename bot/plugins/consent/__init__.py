"""Consent: which channels of a guild may train a model (`/training`), members who opt out of
every training export (`/privacy`), and `python -m bot history export`, which writes the
allowed history without them (`export.py`, in DiscordChatExporter's format: `dce.py`)."""
