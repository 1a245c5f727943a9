"""Request handlers, thin: parse the request, call bot/, render."""
