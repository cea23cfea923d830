"""The one-line error text shared by the command-line tools."""
from dpt.errors import error_message


def test_key_error_loses_its_quotes_and_others_keep_their_text():
    assert error_message(KeyError("unknown trainer 'DTP'")) == "unknown trainer 'DTP'"
    assert error_message(FileNotFoundError("no such file: a.yaml")) == "no such file: a.yaml"
    assert error_message(KeyError()) == ""
