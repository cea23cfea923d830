"""One-line error text for the command-line tools."""


def error_message(err: BaseException) -> str:
    """``str(err)``, without the quotes ``KeyError`` adds around its message."""
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    return str(err)
