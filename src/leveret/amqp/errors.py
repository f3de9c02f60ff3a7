"""Protocol errors that carry their AMQP reply code and scope.

A :class:`ChannelError` closes one channel (channel.close), a
:class:`ConnectionError_` closes the connection (connection.close). Both carry
RabbitMQ's reply code and the full reply text, e.g.
``ChannelError(404, "NOT_FOUND - no queue 'q' in vhost '/'")``, plus the
class/method id of the method that failed. One place — the connection state
machine — turns them into Close frames.
"""
from __future__ import annotations


class AMQPError(Exception):
    reply_code = 541
    connection_level = True

    def __init__(self, reply_code: int, reply_text: str, class_id: int = 0, method_id: int = 0):
        super().__init__(reply_text)
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.class_id = class_id
        self.method_id = method_id

    def __repr__(self):
        return f"{type(self).__name__}({self.reply_code}, {self.reply_text!r})"


class ChannelError(AMQPError):
    """A soft error: closes the channel it happened on."""

    connection_level = False


class ConnectionError_(AMQPError):
    """A hard error: closes the whole connection."""


class AMQPSyntaxError(ConnectionError_):
    """Malformed bytes on the wire (502 SYNTAX_ERROR)."""

    def __init__(self, text: str):
        super().__init__(502, f"SYNTAX_ERROR - {text}")


class FrameError(ConnectionError_):
    """A frame that breaks framing rules (501 FRAME_ERROR)."""

    def __init__(self, text: str):
        super().__init__(501, f"FRAME_ERROR - {text}")


class FatalFrameError(FrameError):
    """A frame whose framing cannot be trusted (larger than frame_max, bad end octet):
    ``rabbit_reader:fatal_frame_error`` sends connection.close 501, reads nothing more and
    drops the socket :attr:`delay` seconds later (no close-ok is awaited)."""

    delay = 3.0          # rabbit_reader's ?SILENT_CLOSE_DELAY, in seconds


class SilentClose(ConnectionError_):
    """RabbitMQ drops the socket without a close frame.

    Two ways, told apart by :attr:`delay`. A refused handshake (bad tune-ok values, an
    unknown SASL mechanism, any error before ``connection.open``) goes through
    ``rabbit_reader:handle_exception``, which sleeps ``SILENT_CLOSE_DELAY`` (3 s) before
    dropping the socket, reading nothing meanwhile. Input that crashes the reader process
    (:class:`ReaderCrash`) drops the socket at once.
    """

    delay = 3.0          # rabbit_reader's ?SILENT_CLOSE_DELAY, in seconds

    def __init__(self, text: str):
        super().__init__(0, text)


class ReaderCrash(SilentClose):
    """Input RabbitMQ's reader process crashes on: the socket drops at once, no frame.

    E.g. an unknown class/method id (``lookup_method_name`` has no clause for it).
    """

    delay = 0.0


class TableCrash(ReaderCrash):
    """A field table ``rabbit_binary_parser:parse_table/1`` has no clause for: a value of an
    unknown type (``U``, ``Z``, ...) or an entry that does not fit its table's length.

    Where RabbitMQ parses the table decides what the client sees: in the arguments of a
    method on a channel the reader crashes (socket dropped at once); on channel 0 the
    crash is caught (541 INTERNAL_ERROR once the connection runs, a silent close before);
    in a message's headers the channel crashes (541 INTERNAL_ERROR). :mod:`.connection`
    maps it; anywhere else it is a reader crash.
    """


def erl_binary(b) -> str:
    """Format bytes as Erlang's ``~w`` prints a binary: always ``<<0,20,0>>``.

    (``rabbit_misc:frame_error`` builds "cannot decode ~w" this way.)
    """
    return "<<" + ",".join(str(c) for c in bytes(b)) + ">>"


# Erlang's ~p prints a binary as a string when every byte is printable Latin-1
# (io_lib:printable_latin1_list): space..~, 160..255 and these escapes.
_ERL_ESCAPES = {0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t", 0x0B: b"\\v", 0x08: b"\\b", 0x0C: b"\\f",
                0x1B: b"\\e", 0x22: b'\\"', 0x5C: b"\\\\"}


def erl_pretty_binary(b, col: int = 0) -> str:
    """Format bytes as Erlang's ``~p`` prints a binary that starts at (0-based) column ``col``.

    ``<<"ab\\ncd">>`` when every byte is printable Latin-1 (bytes 160-255 go out raw, as
    RabbitMQ's reply text carries them; raw bytes come back through ``surrogateescape``
    unchanged), else ``<<0,20,0>>``, which io_lib_pretty breaks when it does not fit the
    line: it fills lines of at most N characters, ``N = min(77 - col, len - 4)``, and indents
    the next lines under the first byte (``io_lib_pretty:pp_binary``)."""
    b = bytes(b)
    if b and all(32 <= c < 127 or c >= 160 or c in _ERL_ESCAPES for c in b):
        out = b"".join(_ERL_ESCAPES.get(c) or bytes((c,)) for c in b)
        return '<<"' + out.decode("utf-8", "surrogateescape") + '">>'
    flat = erl_binary(b)
    pcol = col + 1                          # io_lib_format hands io_lib_pretty a 1-based column
    if len(flat) < _LINE - pcol:
        return flat
    n0 = max(8, min(_LINE - (pcol + 2), len(flat) - 4))
    pad = "\n" + " " * (col + 2)
    *items, last = [str(c) for c in b]
    parts = ["<<"]
    n = n0
    for it in items:
        n -= len(it) + 1
        if n < 0:
            parts.append(pad)
            n = n0 - len(it) - 1
        parts.append(it + ",")
    parts.append((pad + last) if len(last) > n else last)
    parts.append(">>")
    return "".join(parts)


_LINE = 80          # io_lib_format's line length for ~p


def _erl_term(term, col: int) -> str:
    """~p of an atom (a str), an integer or a tagged tuple of those starting at (0-based)
    column ``col``. A tuple that does not fit keeps ``{tag,`` on its line and puts each
    further element on a line of its own, indented one past the brace (io_lib_pretty)."""
    if not isinstance(term, tuple):
        return str(term)
    items = [str(t) for t in term]
    flat = "{" + ",".join(items) + "}"
    if len(flat) < _LINE - (col + 1):
        return flat
    pad = "\n" + " " * (col + 1)
    return "{" + items[0] + "," + ",".join(pad + it for it in items[1:]) + "}"


def frame_text(ftype: int, payload, reason=None) -> str:
    """RabbitMQ's explanation for a FRAME_ERROR (``"type ~p, ~s octets = ~p: ~p"``, with
    ``reason``: an atom as a str, or a tuple) or an UNEXPECTED_FRAME (``reason`` None): the
    frame type and its payload as ``rabbit_reader:payload_snippet`` quotes it -- ``all octets``
    up to 16 bytes, else the ``first 16 octets`` -- laid out as Erlang's ~p lays each term out
    from the column it starts at (io_lib_format's line length 80), line breaks included."""
    if len(payload) <= 16:
        text = f"type {ftype}, all octets = "
    else:
        text = f"type {ftype}, first 16 octets = "
        payload = payload[:16]
    text += erl_pretty_binary(payload, len(text))
    if reason is None:
        return text
    text += ": "
    return text + _erl_term(reason, len(text) - text.rfind("\n") - 1)


def precondition_failed(text: str, cid: int = 0, mid: int = 0) -> ChannelError:
    return ChannelError(406, f"PRECONDITION_FAILED - {text}", cid, mid)


def not_found(text: str, cid: int = 0, mid: int = 0) -> ChannelError:
    return ChannelError(404, f"NOT_FOUND - {text}", cid, mid)


def access_refused(text: str, cid: int = 0, mid: int = 0) -> ChannelError:
    return ChannelError(403, f"ACCESS_REFUSED - {text}", cid, mid)


def resource_locked(text: str, cid: int = 0, mid: int = 0) -> ChannelError:
    return ChannelError(405, f"RESOURCE_LOCKED - {text}", cid, mid)


def command_invalid(text: str, cid: int = 0, mid: int = 0) -> ConnectionError_:
    return ConnectionError_(503, f"COMMAND_INVALID - {text}", cid, mid)


def not_allowed(text: str, cid: int = 0, mid: int = 0) -> ConnectionError_:
    return ConnectionError_(530, f"NOT_ALLOWED - {text}", cid, mid)



def unexpected_frame(text: str, cid: int = 0, mid: int = 0) -> ConnectionError_:
    return ConnectionError_(505, f"UNEXPECTED_FRAME - {text}", cid, mid)


def not_implemented(text: str, cid: int = 0, mid: int = 0) -> ConnectionError_:
    return ConnectionError_(540, f"NOT_IMPLEMENTED - {text}", cid, mid)


def internal_error() -> ConnectionError_:
    """What RabbitMQ sends for a crash it catches (``map_exception`` of a non-AMQP reason):
    541 with the bare text ``INTERNAL_ERROR`` and class/method 0/0."""
    return ConnectionError_(541, "INTERNAL_ERROR")

