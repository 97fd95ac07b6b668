"""One module per command or group: options → one service call → render."""
