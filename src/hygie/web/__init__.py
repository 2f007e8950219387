"""The shared browser layout, login, navigation and static assets."""
