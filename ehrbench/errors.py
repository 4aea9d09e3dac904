"""The one exception type whose message is meant for a user.

Every check on user input (a config, a MEDS folder, a label table) raises `EhrbenchError` with a
one-paragraph message that names the file, the key or column, and what was expected. The command
line prints that message without a traceback; any other exception is a bug in ehrbench.
"""


class EhrbenchError(Exception):
    """A problem with the user's input or request, explained in the message."""
