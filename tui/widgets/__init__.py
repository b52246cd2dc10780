"""Dashboard widgets: one per module; data comes down as attributes, intents go up as messages."""
