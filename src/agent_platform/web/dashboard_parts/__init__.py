"""The dashboard page's parts: its figures shaped for reading, and its small SVG charts."""
