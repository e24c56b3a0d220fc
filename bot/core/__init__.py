"""The Discord-free core both surfaces share: the services, completions, records, the command
table and plugin discovery. Nothing here imports discord.py."""
