"""``leveret.config``: every supported rabbitmq.conf key, RabbitMQ's cross-key rules, and each
error with the line it names. The expected values were checked against RabbitMQ 3.10.8's own
cuttlefish (its schemas and ``cuttlefish_generator:map``) where RabbitMQ decides them."""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys

import pytest

from leveret.config import HANDLERS, ConfigError, load, parse
from leveret.config.rabbitmq_keys import KEYS
from leveret.settings import DEFAULTS, Settings


def conf(*lines: str, base: Settings | None = None) -> Settings:
    settings, _ = parse("\n".join(lines) + "\n", "rabbitmq.conf", base)
    return settings


def error(*lines: str) -> ConfigError:
    with pytest.raises(ConfigError) as ei:
        parse("\n".join(lines) + "\n", "rabbitmq.conf")
    return ei.value


# ------------------------------------------------------------------ syntax

def test_empty_file_and_comments_give_the_defaults():
    assert conf("", "# a comment", "   ", "\t# indented comment") == Settings()


def test_hash_starts_a_comment_even_inside_a_value_and_there_is_no_quoting():
    s = conf("default_pass = abc#def", "default_user = 'al ice'   # note", "  default_vhost=x\t")
    assert (s.default_pass, s.default_user, s.default_vhost) == ("abc", "'al ice'", "x")


def test_crlf_line_ends_and_a_missing_final_newline():
    s, _ = parse(b"heartbeat = 3\r\nframe_max = 9000", "f")
    assert (s.heartbeat, s.frame_max) == (3, 9000)


def test_a_key_set_twice_takes_the_last_value():
    assert conf("heartbeat = 10", "heartbeat = 20").heartbeat == 20


def test_syntax_errors_name_the_line():
    e = error("heartbeat = 10", "", "this is not a setting")
    assert (e.path, e.line) == ("rabbitmq.conf", 3)
    assert str(e).startswith("rabbitmq.conf:3: syntax error")
    assert error("heartbeat =").line == 1
    assert "no value" in str(error("# c", "default_pass =   # nothing"))


def test_invalid_utf8_is_an_error_on_its_line():
    with pytest.raises(ConfigError) as ei:
        parse(b"heartbeat = 1\ndefault_user = \xff\xfe\n", "f")
    assert ei.value.line == 2 and "UTF-8" in str(ei.value)


def test_include_reads_files_relative_to_the_including_file(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-a.conf").write_text("heartbeat = 7\n")
    (tmp_path / "conf.d" / "20-b.conf").write_text("heartbeat = 8\nframe_max = 8192\n")
    main = tmp_path / "rabbitmq.conf"
    main.write_text("frame_max = 4096\ninclude conf.d/*.conf\n")
    s, _ = load(str(main))
    assert (s.heartbeat, s.frame_max) == (8, 8192)


def test_include_errors_name_the_included_file_and_cycles_stop(tmp_path):
    (tmp_path / "bad.conf").write_text("heartbeat = 1\nheartbeat = x\n")
    main = tmp_path / "rabbitmq.conf"
    main.write_text("include bad.conf\n")
    with pytest.raises(ConfigError) as ei:
        load(str(main))
    assert ei.value.path.endswith("bad.conf") and ei.value.line == 2
    (tmp_path / "loop.conf").write_text("include loop.conf\n")
    with pytest.raises(ConfigError, match="nested"):
        load(str(tmp_path / "loop.conf"))


def test_include_of_nothing_is_a_warning(tmp_path):
    main = tmp_path / "rabbitmq.conf"
    main.write_text("include nothere/*.conf\nheartbeat = 5\n")
    s, warnings = load(str(main))
    assert s.heartbeat == 5 and len(warnings) == 1 and ":1: include" in warnings[0]


def test_missing_file_and_erlang_term_format_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(str(tmp_path / "nope.conf"))
    with pytest.raises(ConfigError, match="Erlang-term"):
        load(str(tmp_path / "advanced.config"))


# ------------------------------------------------------------------ unknown and ignored keys

def test_unknown_key_is_an_error_with_a_suggestion():
    e = error("heartbeat = 10", "heartbaet = 10")
    assert e.line == 2 and "heartbaet: unknown key" in str(e) and "did you mean heartbeat" in str(e)
    assert error("Default_pass = x").line == 1          # keys are case-sensitive


def test_rabbitmq_keys_leveret_does_not_use_are_warnings():
    s, warnings = parse("cluster_formation.peer_discovery_backend = classic_config\n"
                        "cluster_formation.classic_config.nodes.1 = rabbit@host1\n"
                        "mqtt.listeners.tcp.default = 1883\n"
                        "log.file.rotation.count = 5\n", "f")
    assert s == Settings()
    assert [w.split(": ")[1] for w in warnings] == [
        "cluster_formation.peer_discovery_backend", "cluster_formation.classic_config.nodes.1",
        "mqtt.listeners.tcp.default", "log.file.rotation.count"]
    assert all("ignored: does not apply to Leveret" in w for w in warnings)
    assert warnings[1].startswith("f:2: ")


def test_auth_backends_other_than_internal_are_refused():
    assert conf("auth_backends.1 = internal") == Settings()
    e = error("auth_backends.1 = ldap")
    assert e.line == 1 and "internal" in str(e)


# ------------------------------------------------------------------ listeners

@pytest.mark.parametrize("value, host, port", [
    ("5673", "", 5673),                       # a bare port: every interface, as RabbitMQ
    ("127.0.0.1:5674", "127.0.0.1", 5674),
    ("::1:5675", "::1", 5675),                # RabbitMQ's IPv6 form
    ("[::1]:5676", "::1", 5676),              # also accepted here (RabbitMQ 3.10.8 refuses it)
    (":::5677", "::", 5677),
    ("0.0.0.0:0", "0.0.0.0", 0),
])
def test_tcp_listener_forms(value, host, port):
    s = conf(f"listeners.tcp.default = {value}")
    assert (s.host, s.port, s.tcp_listener) == (host, port, True)


@pytest.mark.parametrize("value", ["localhost:5672", "1.2.3.4", "127.0.0.1: 5672", "5672x", "99999",
                                   "127.0.0.1:70000", "-1", "[::1]5672"])
def test_bad_listeners_are_refused(value):
    e = error("# x", f"listeners.tcp.default = {value}")
    assert e.line == 2 and "listeners.tcp.default" in str(e)


def test_listeners_tcp_none_switches_the_plain_listener_off_and_wins():
    assert conf("listeners.tcp = none").tcp_listener is False
    assert conf("listeners.tcp.default = 5672", "listeners.tcp = none").tcp_listener is False
    assert error("listeners.tcp = off").line == 1


def test_several_listeners_are_refused_naming_both():
    e = error("listeners.tcp.1 = 127.0.0.1:5672", "listeners.tcp.2 = ::1:5672")
    assert e.line == 2 and "listeners.tcp.1 (line 1)" in str(e)


def test_ssl_listener_and_none():
    s = conf("listeners.ssl.default = 5671")
    assert (s.ssl_host, s.ssl_port) == ("", 5671)
    s = conf("listeners.ssl.default = 10.0.0.1:5671")
    assert (s.ssl_host, s.ssl_port) == ("10.0.0.1", 5671)
    assert conf("listeners.ssl.default = 5671", "listeners.ssl = none").ssl_port is None


# ------------------------------------------------------------------ TLS

def test_ssl_options(tmp_path):
    files = {}
    for name in ("cert", "key", "ca"):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_text("-----BEGIN X-----\n")
    s = conf(f"ssl_options.certfile = {files['cert']}", f"ssl_options.keyfile = {files['key']}",
             f"ssl_options.cacertfile = {files['ca']}", "ssl_options.password = pa ss",
             "ssl_options.verify = verify_peer", "ssl_options.fail_if_no_peer_cert = true",
             "ssl_options.versions.1 = tlsv1.3", "ssl_options.versions.2 = tlsv1.2",
             "ssl_options.ciphers.1 = TLS_AES_256_GCM_SHA384", "ssl_options.ciphers.2 = ECDHE-RSA-AES256-GCM-SHA384",
             "ssl_cert_login_from = subject_alt_name", "ssl_cert_login_san_type = email",
             "ssl_cert_login_san_index = 2", "auth_mechanisms.1 = EXTERNAL", "auth_mechanisms.2 = PLAIN",
             "ssl_options = none")
    assert (s.ssl_certfile, s.ssl_keyfile, s.ssl_cacertfile) == tuple(str(files[n]) for n in ("cert", "key", "ca"))
    assert s.ssl_password == "pa ss" and s.ssl_verify == "verify_peer" and s.ssl_fail_if_no_peer_cert is True
    assert s.ssl_versions == ("tlsv1.3", "tlsv1.2")
    assert s.ssl_ciphers == ("TLS_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384")
    assert s.ssl_cert_login_from == "subject_alternative_name"      # RabbitMQ's alias
    assert (s.ssl_cert_login_san_type, s.ssl_cert_login_san_index) == ("email", 2)
    assert s.auth_mechanisms == ("EXTERNAL", "PLAIN")


@pytest.mark.parametrize("line, words", [
    ("ssl_options.certfile = /nonexistent/cert.pem", "does not exist"),
    ("ssl_options.verify = verify_maybe", "verify_none, verify_peer"),
    ("ssl_options.fail_if_no_peer_cert = yes", "true, false"),
    ("ssl_options.versions.1 = sslv3", "tlsv1.2"),
    ("ssl_cert_login_from = email", "common_name"),
    ("ssl_cert_login_san_type = dn", "other_name"),
    ("ssl_cert_login_san_index = -1", "out of range"),
    ("auth_mechanisms.1 = PL AIN", "SASL mechanism"),
    ("ssl_options = some", "none"),
])
def test_bad_tls_values(line, words):
    e = error("heartbeat = 1", "", line)
    assert e.line == 3 and line.split(" =")[0] in str(e) and words in str(e)


# ------------------------------------------------------------------ users

def test_default_user_vhost_tags_and_permissions():
    s = conf("default_user = alice", "default_pass = s3cret", "default_vhost = prod",
             "default_user_tags.administrator = false", "default_user_tags.monitoring = true",
             "default_permissions.configure = ^amq\\.gen.*", "default_permissions.read = .*",
             "default_permissions.write = ^$")
    assert (s.default_user, s.default_pass, s.default_vhost) == ("alice", "s3cret", "prod")
    assert s.default_user_tags == ("monitoring",)
    assert s.default_permissions == ("^amq\\.gen.*", "^$", ".*")    # configure, write, read


def test_default_permissions_needs_all_three():
    e = error("default_permissions.configure = .*", "default_permissions.read = .*")
    assert e.line == 1 and "default_permissions.write missing" in str(e)


def test_loopback_users_as_rabbitmq_translates_them():
    assert conf("loopback_users.guest = false").loopback_users == ()
    assert conf("loopback_users = none").loopback_users == ()
    # setting any name replaces the default list: guest is no longer loopback-only
    assert conf("loopback_users.alice = true").loopback_users == ("alice",)
    assert conf("loopback_users.alice = true", "loopback_users = none").loopback_users == ()
    assert error("loopback_users.guest = no").line == 1


# ------------------------------------------------------------------ limits

def test_protocol_limits():
    s = conf("channel_max = 128", "frame_max = 128KB", "heartbeat = 0", "handshake_timeout = 5000",
             "connection_max = 1000", "max_message_size = 536870912", "consumer_timeout = 900000")
    assert (s.channel_max, s.frame_max, s.heartbeat) == (128, 131072, 0)
    assert (s.handshake_timeout, s.connection_max, s.max_message_size, s.consumer_timeout) == (
        5.0, 1000, 536870912, 900000)
    assert math.isinf(conf("handshake_timeout = infinity").handshake_timeout)
    assert conf("connection_max = infinity").connection_max is None
    assert conf("frame_max = 1MB").frame_max == 1048576


@pytest.mark.parametrize("line", [
    "heartbeat = 0x10", "heartbeat = -5", "heartbeat = 10 20", "heartbeat = 70000",
    "frame_max = 1024B", "frame_max = 100", "channel_max = 0", "channel_max = 65536",
    "handshake_timeout = forever", "connection_max = -1", "max_message_size = 0",
    "max_message_size = 536870913", "consumer_timeout = 0", "consumer_timeout = 1.5",
])
def test_bad_limits(line):
    e = error(line)
    assert e.line == 1 and str(e).startswith(f"rabbitmq.conf:1: {line.split(' =')[0]}: ")


def test_memory_and_disk_limits():
    assert conf("vm_memory_high_watermark.relative = 0.6").memory_high_watermark == 0.6
    assert conf("vm_memory_high_watermark.absolute = 1GiB").memory_high_watermark == 1024**3
    assert conf("vm_memory_high_watermark.absolute = 2GB").memory_high_watermark == 2 * 10**9
    assert conf("vm_memory_high_watermark.absolute = 1073741824").memory_high_watermark == 1073741824
    assert conf("vm_memory_high_watermark.absolute = 512k").memory_high_watermark == 512 * 1024
    # relative wins over absolute whatever their order (RabbitMQ's translation)
    assert conf("vm_memory_high_watermark.relative = 0.5",
                "vm_memory_high_watermark.absolute = 1GB").memory_high_watermark == 0.5
    assert conf("disk_free_limit.absolute = 2GB").disk_free_limit == 2 * 10**9
    assert conf("disk_free_limit.absolute = 50MB", "disk_free_limit.relative = 1.5").disk_free_limit == 1.5


@pytest.mark.parametrize("line", [
    "vm_memory_high_watermark.relative = 1",          # cuttlefish floats need a decimal point
    "vm_memory_high_watermark.relative = .5",
    "vm_memory_high_watermark.relative = -0.2",
    "vm_memory_high_watermark.absolute = 1.5GB",
    "vm_memory_high_watermark.absolute = 1TB",
    "disk_free_limit.absolute = lots",
    "disk_free_limit.relative = 2",
])
def test_bad_sizes(line):
    e = error(line)
    assert e.line == 1 and line.split(" =")[0] in str(e)


def test_load_definitions(tmp_path):
    f = tmp_path / "defs.json"
    f.write_text("{}")
    assert conf(f"load_definitions = {f}").definitions_file == str(f)
    assert "does not exist" in str(error(f"load_definitions = {tmp_path / 'none.json'}"))


# ------------------------------------------------------------------ logging and HTTP endpoints

def test_log_settings():
    s = conf("log.console = false", "log.console.level = warning", "log.console.stdio = stdout",
             "log.file = leveret.log", "log.file.level = <=notice", "log.dir = /var/log/leveret",
             "log.default.level = debug")
    assert (s.log_console, s.log_console_level, s.log_console_stdio) == (False, "warning", "stdout")
    assert (s.log_file, s.log_file_level, s.log_dir, s.log_level) == ("leveret.log", "<=notice",
                                                                      "/var/log/leveret", "debug")
    assert conf("log.file = false").log_file is None


@pytest.mark.parametrize("line", ["log.console = yes", "log.console.level = verbose",
                                  "log.file.level = =info2", "log.console.stdio = stdlog"])
def test_bad_log_values(line):
    assert error(line).line == 1


def test_management_and_prometheus_endpoints():
    s = conf("management.tcp.port = 15673", "management.tcp.ip = 0.0.0.0",
             "prometheus.tcp.port = 15693", "prometheus.tcp.ip = ::")
    assert (s.management_host, s.management_port, s.prometheus_host, s.prometheus_port) == (
        "0.0.0.0", 15673, "::", 15693)
    assert error("management.tcp.port = http").line == 1
    assert error("prometheus.tcp.ip = localhost").line == 1


def test_the_file_overlays_the_base_settings():
    base = Settings(port=1234, data_dir="/d", heartbeat=5)
    s = conf("heartbeat = 7", base=base)
    assert (s.port, s.data_dir, s.heartbeat) == (1234, "/d", 7)
    assert base.heartbeat == 5 and DEFAULTS.heartbeat == 60       # neither is modified


GENERATOR = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "gen_config_keys.py")


@pytest.mark.skipif(not os.path.isdir("/usr/lib/rabbitmq/lib/rabbitmq_server-3.10.8/plugins"),
                    reason="needs RabbitMQ 3.10.8's schemas (Debian's rabbitmq-server)")
def test_the_generated_key_list_matches_the_installed_rabbitmq_schemas():
    r = subprocess.run([sys.executable, GENERATOR, "--check"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_every_key_leveret_applies_is_a_rabbitmq_key():
    """Leveret invents no keys: each pattern it handles is in RabbitMQ 3.10.8's schemas."""
    patterns = {re.sub(r"\$\w+", "$", k) for k in KEYS}
    assert sorted(k for k in HANDLERS if k not in patterns) == []
