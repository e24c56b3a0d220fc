"""The Discord surface: the discord.py application, its cogs' shared behaviour, and sharding."""
