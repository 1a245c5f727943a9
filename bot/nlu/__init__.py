"""Natural-language understanding helpers shared by the Rasa pipeline and our code."""
