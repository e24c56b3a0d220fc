# The test Discord server (the `fake_discord` fixture) and the `e2e` marker for the tests using it.
from bot.testing.fixtures import *  # noqa: F403
