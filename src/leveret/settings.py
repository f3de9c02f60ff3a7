"""Every setting and tunable of a Leveret broker, with its default, in one place.

:class:`Settings` is what ``leveret serve`` builds from a RabbitMQ ``rabbitmq.conf``
(``leveret.config``), its environment variables and its flags, and what an embedding program
passes to :class:`leveret.Broker`. No other
module holds a default of its own: the protocol core (``amqp/connection.py``), the CLI
and the I/O layer read theirs from :data:`DEFAULTS`, so a number is changed here or
nowhere.

The first group is what a RabbitMQ user configures (``rabbitmq.conf`` names in the
comments); the second is Leveret's own tuning, measured values documented where they
are used (``docs/architecture.md``, "Scheduling and flow control"). This module imports
nothing from Leveret, so every layer may read it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


def default_data_dir() -> str:
    """``$XDG_DATA_HOME/leveret`` (``~/.local/share/leveret``): ``leveret serve``'s default."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "leveret")


CONTROL_SOCKET = "ctl.sock"


def control_socket_path(data_dir: str) -> str:
    """Where a broker with ``data_dir`` listens for ``leveret ctl`` (``server/control.py``)."""
    return os.path.join(data_dir, CONTROL_SOCKET)


# what ``leveret serve --rabbitmq4`` (and the pytest plugin's ``rabbitmq4=True``) switch on:
# RabbitMQ 4.x's behaviour where it differs from 3.10.8's
RABBITMQ4 = {"ignore_global_qos": True, "refuse_transient_queues": True, "last_death_headers": True,
             "exchange_type_precondition": True}


@dataclass
class Settings:
    # ---------------------------------------------------------------- as RabbitMQ's
    host: str = "127.0.0.1"                 # listeners.tcp.default (address part; "": every interface)
    port: int = 5672                        # listeners.tcp.default
    data_dir: str | None = None             # None: keep nothing on disk (embedded default)
    heartbeat: int = 60                     # heartbeat (seconds offered at connection.tune)
    frame_max: int = 131072                 # frame_max
    channel_max: int = 2047                 # channel_max
    handshake_timeout: float = 10.0         # handshake_timeout (seconds here, ms in rabbitmq.conf; inf: infinity)
    max_message_size: int = 134217728       # max_message_size (bytes)
    default_user: str = "guest"             # default_user
    default_pass: str = "guest"             # default_pass
    default_vhost: str = "/"                # default_vhost
    default_user_tags: tuple = ("administrator",)    # default_user_tags.NAME = true
    default_permissions: tuple = (".*", ".*", ".*")  # default_permissions.configure, .write, .read (this order)
    loopback_users: tuple = ("guest",)      # loopback_users (.NAME = true|false, or = none)
    memory_high_watermark: float | int | str = 0.4   # vm_memory_high_watermark.relative (a float: fraction
    #                                         of RAM) or .absolute (bytes, or a size string "1GiB")
    disk_free_limit: int | str | float = 50_000_000  # disk_free_limit.absolute (bytes, or a size "1GB"),
    #                                         or .relative (a float: a multiple of RAM)
    consumer_timeout: int | None = 1800000  # consumer_timeout (ms an unacked delivery may wait)
    definitions_file: str | None = None     # load_definitions: a RabbitMQ definitions JSON
    # product.name / product.version: what connection.start's server properties, the management
    # API, definitions exports and Prometheus's identity metric call the broker. RabbitMQ's by
    # default, because clients branch on them: kombu (Celery) uses basic.qos global=true, as
    # RabbitMQ's channel-wide prefetch, only when product is "RabbitMQ" 3.3 or later
    product_name: str = "RabbitMQ"
    product_version: str = "3.10.8"
    control_socket: str | None = None       # leveret ctl's Unix socket: None = <data_dir>/ctl.sock
    #                                         when there is a data dir, else none; "" = none
    # listeners: the plain one can be switched off (``listeners.tcp = none``)
    tcp_listener: bool = True               # listeners.tcp.* (False: no plain AMQP listener)
    ssl_host: str | None = None             # listeners.ssl.default address part (None: ``host``; "": every interface)
    ssl_port: int | None = None             # listeners.ssl.default (RabbitMQ's usual 5671; None: no TLS)
    ssl_certfile: str | None = None         # ssl_options.certfile
    ssl_keyfile: str | None = None          # ssl_options.keyfile
    ssl_password: str | None = None         # ssl_options.password (the key's passphrase)
    ssl_cacertfile: str | None = None       # ssl_options.cacertfile
    ssl_verify: str = "verify_none"         # ssl_options.verify: verify_none | verify_peer
    ssl_fail_if_no_peer_cert: bool = False  # ssl_options.fail_if_no_peer_cert
    ssl_versions: tuple = ()                # ssl_options.versions.N ('tlsv1.2', 'tlsv1.3'); () = library default
    ssl_ciphers: tuple = ()                 # ssl_options.ciphers.N (OpenSSL names); () = library default
    ssl_cert_login_from: str = "distinguished_name"  # ssl_cert_login_from: distinguished_name |
    #                                         common_name | subject_alternative_name
    ssl_cert_login_san_type: str = "dns"    # ssl_cert_login_san_type: dns | ip | email | uri | other_name
    ssl_cert_login_san_index: int = 0       # ssl_cert_login_san_index
    auth_mechanisms: tuple = ("PLAIN", "AMQPLAIN")   # auth_mechanisms.N (EXTERNAL for certificate login)
    # limits
    connection_max: int | None = None       # connection_max (None: infinity)
    # logging (log.*): RabbitMQ's levels debug info notice warning error critical alert emergency none
    log_level: str = "info"                 # log.default.level (every message passes this first)
    log_console: bool = True                # log.console (RabbitMQ's package logs to a file instead)
    log_console_level: str = "info"         # log.console.level
    log_console_stdio: str = "stderr"       # log.console.stdio: stdout | stderr (RabbitMQ's default stdout)
    log_file: str | None = None             # log.file (None / false: no log file; relative: under log_dir)
    log_file_level: str = "info"            # log.file.level (also =debug, !=info, <=notice, <warning)
    log_dir: str | None = None              # log.dir (None: a relative log_file is relative to the cwd)
    # HTTP endpoints RabbitMQ's plugins serve (management API and web UI; Prometheus metrics)
    management_enabled: bool = False       # the management API (``leveret serve``: on; embedded: off)
    management_host: str = "127.0.0.1"      # management.tcp.ip (RabbitMQ: every interface)
    management_port: int = 15672            # management.tcp.port
    prometheus_enabled: bool = False       # Prometheus metrics (``leveret serve``: on; embedded: off)
    prometheus_host: str = "127.0.0.1"      # prometheus.tcp.ip (RabbitMQ: every interface)
    prometheus_port: int = 15692            # prometheus.tcp.port
    # RabbitMQ 4.x defaults, off by default (3.13 behaviour):
    ignore_global_qos: bool = False         # 4.x ignores basic.qos(global=True)
    refuse_transient_queues: bool = False   # 4.x refuses transient non-exclusive queues
    last_death_headers: bool = False        # 3.13+ sets x-last-death-{reason,queue,exchange} on
    #                                         every dead-lettering; 3.10 does not
    exchange_type_precondition: bool = False  # 3.12.16+/3.13.3+/4.x: an unknown exchange type is a
    #                                         406 on the channel; 3.10: 503 closing the connection

    # ---------------------------------------------------------------- Leveret's tuning
    stats_interval: float = 5.0             # collect_statistics_interval: seconds between statistics samples
    monitor_interval: float = 1.0           # seconds between resource (memory/disk) checks
    compact_interval: float = 30.0          # seconds between checks for stuck log segments
    consumer_timeout_check: float = 0.25    # seconds between consumer-timeout sweeps
    tick_interval: float = 0.1              # the listener's clock (heartbeats, handshake timeouts)
    close_linger: float = 30.0              # seconds to wait for close-ok / for the peer to hang up
    #                                         (RabbitMQ's ?CLOSING_TIMEOUT; the heartbeat interval when shorter)
    # publisher flow control (broker/flow.py)
    flow_backlog: int = 2000                # ready messages above which a draining queue holds publishers
    flow_resume: int = 1000                 # ... until it is below this many
    flow_max_pause: float = 1.0             # never hold a publishing connection longer (seconds)
    burst_bytes: int = 256 * 1024           # deliveries buffered in one loop turn before a flush
    # socket I/O (server/protocol.py)
    read_size: int = 64 * 1024              # bytes taken from a socket per read
    fair_read_bytes: int = 32 * 1024        # a read this large yields the rest of the loop turn
    write_buffer_high: int = 4 * 1024 * 1024    # stop delivering to a peer with this much unsent
    write_buffer_low: int = 1024 * 1024         # ... until it drains below this
    # a long queue's in-memory head (broker/queue/paging.py) and memory-driven paging
    ram_msgs: int = 4096
    ram_bytes: int = 8 * 1024 * 1024
    paging_ratio: float = 0.5               # above this share of the watermark, queues page
    paging_ram_msgs: int = 64               # ... and keep only this window in memory
    paging_ram_bytes: int = 512 * 1024
    # delayed messages (broker/delayed.py)
    delay_bucket_ms: int = 4                # release granularity
    delay_batch: int = 2000                 # due messages routed per loop turn
    # the garbage collector's youngest-generation threshold under ``leveret serve`` (0: Python's)
    gc_threshold: int = 50000


DEFAULTS = Settings()
