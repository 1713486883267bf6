"""The automation pages: lists with switches, the visual rule editor, sequences, the run log."""
