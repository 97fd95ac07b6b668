"""Jobs behind the commands: repository → arrays → algorithm → arrays → repository."""
