"""Where a matter goes: address parsing, grid lookup and routing rules."""
