"""Screens: the dashboard (controller) and its modals."""
