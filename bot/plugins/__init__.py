"""The built-in plugins: discord.py extensions written as any third-party plugin is, on `bot.api`.

Each module imports from `bot` only `bot.api` (and its sibling modules here). How plugins are
found and loaded is `bot.core.plugins`; how to write one is `docs/plugins.md`.
"""
