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


class SilentClose(ConnectionError_):
    """RabbitMQ drops the socket without a close frame (bad handshake, unknown method)."""

    def __init__(self, text: str):
        super().__init__(0, text)


class ReaderCrash(SilentClose):
    """Input RabbitMQ's reader process crashes on: the socket drops at once, no frame.

    E.g. an unknown class/method id (``lookup_method_name`` has no clause for it).
    """


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
    """Format bytes as Erlang prints a binary with ~p: ``<<"abc">>`` or ``<<0,20,0>>``."""
    b = bytes(b)
    if b and all(32 <= c < 127 for c in b):
        return '<<"' + b.decode().replace("\\", "\\\\").replace('"', '\\"') + '">>'
    return "<<" + ",".join(str(c) for c in b) + ">>"


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

