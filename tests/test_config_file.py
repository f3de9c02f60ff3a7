"""``leveret serve --config FILE``: a real process reads a rabbitmq.conf, clients connect with
pika; a bad file exits 2 naming the file and line; precedence is defaults < file < environment
< flags (``build_settings``), and log.* settings reach Python logging."""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys

import pika
import pytest

from leveret import Broker
from leveret.broker.alarms import total_memory
from leveret.cli import build_parser, build_settings, config_file, setup_logging
from leveret.config import ConfigError, parse
from leveret.settings import DEFAULTS, Settings

from conftest import _free_port, _wait_port

pytestmark = pytest.mark.leveret_only


def serve(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "leveret", "serve", *args],
                            env=env or os.environ.copy(), stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


def test_serve_reads_port_and_default_user_from_the_file(tmp_path):
    port = _free_port()
    cfg = tmp_path / "rabbitmq.conf"
    cfg.write_text(f"# a RabbitMQ config\nlisteners.tcp.default = 127.0.0.1:{port}\n"
                   "default_user = alice\ndefault_pass = s3cret\ndefault_vhost = app\n"
                   "cluster_formation.peer_discovery_backend = classic_config\n")
    proc = serve("--config", str(cfg), "--data-dir", str(tmp_path / "data"))
    try:
        _wait_port("127.0.0.1", port, proc)
        conn = pika.BlockingConnection(pika.URLParameters(f"amqp://alice:s3cret@127.0.0.1:{port}/app"))
        ch = conn.channel()
        ch.queue_declare("cfg-q", exclusive=True)
        ch.basic_publish("", "cfg-q", b"hi")
        assert ch.basic_get("cfg-q", auto_ack=True)[2] == b"hi"
        conn.close()
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/app"))
    finally:
        err = stop(proc)
    assert f"{cfg}:6: cluster_formation.peer_discovery_backend: ignored: does not apply to Leveret" in err


@pytest.mark.parametrize("content, where, words", [
    ("heartbeat = 30\nlisteners.tcp.defualt = 5672x\n", ":2: ", "5672x"),
    ("heartbeat = 30\n\nheartbaet = 30\n", ":3: ", "heartbaet: unknown key"),
    ("vm_memory_high_watermark.relative = 1\n", ":1: ", "not a float"),
    ("ssl_options.verify = verify_sometimes\n", ":1: ", "verify_none, verify_peer"),
])
def test_a_bad_file_exits_2_naming_file_and_line(tmp_path, content, where, words):
    cfg = tmp_path / "rabbitmq.conf"
    cfg.write_text(content)
    r = subprocess.run([sys.executable, "-m", "leveret", "serve", "--config", str(cfg),
                        "--data-dir", str(tmp_path / "d")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.startswith(f"leveret serve: {cfg}{where}") and words in r.stderr
    assert "Traceback" not in r.stderr


def test_a_missing_config_file_exits_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "leveret", "serve", "--config", str(tmp_path / "none.conf")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "none.conf: cannot read the config file" in r.stderr


def test_leveret_config_file_env_and_file_log_settings(tmp_path):
    """LEVERET_CONFIG_FILE names the file; log.file gets the log lines at its level."""
    port = _free_port()
    cfg = tmp_path / "rabbitmq.conf"
    cfg.write_text(f"listeners.tcp.default = 127.0.0.1:{port}\nlog.dir = {tmp_path}\nlog.file = leveret.log\n"
                   "log.file.level = debug\nlog.console.level = error\n")
    env = dict(os.environ, LEVERET_CONFIG_FILE=str(cfg), LEVERET_DATA_DIR=str(tmp_path / "data"))
    proc = serve(env=env)
    try:
        _wait_port("127.0.0.1", port, proc)
    finally:
        err = stop(proc)
    log = (tmp_path / "leveret.log").read_text()
    assert f"listening on amqp://127.0.0.1:{port}" in log and "shutting down" in log
    assert "listening" not in err                      # the console logs errors only


# ------------------------------------------------------------------ precedence (in process)

def settings_for(argv: list[str], environ: dict):
    args = build_parser().parse_args(["serve", *argv])
    return build_settings(args, environ)[0]


def test_precedence_defaults_file_env_flags(tmp_path):
    cfg = tmp_path / "rabbitmq.conf"
    cfg.write_text("listeners.tcp.default = 10.0.0.1:1111\nheartbeat = 11\nconsumer_timeout = 5000\n"
                   "disk_free_limit.relative = 1.5\n")
    s = settings_for(["--config", str(cfg)], {})
    assert (s.host, s.port, s.heartbeat, s.consumer_timeout, s.disk_free_limit) == ("10.0.0.1", 1111, 11, 5000, 1.5)
    assert s.frame_max == DEFAULTS.frame_max                       # not in the file: the default
    env = {"LEVERET_PORT": "2222", "LEVERET_CONSUMER_TIMEOUT": "0", "LEVERET_DISK_FREE_LIMIT": "1GB"}
    s = settings_for(["--config", str(cfg)], env)
    assert (s.host, s.port, s.heartbeat, s.consumer_timeout, s.disk_free_limit) == ("10.0.0.1", 2222, 11, None, "1GB")
    s = settings_for(["--config", str(cfg), "--port", "3333", "--heartbeat", "33", "--host", "127.0.0.1"], env)
    assert (s.host, s.port, s.heartbeat) == ("127.0.0.1", 3333, 33)


def test_a_flag_not_given_does_not_override_the_file(tmp_path):
    """The old CLI's argparse defaults would have put 127.0.0.1:5672 back over the file."""
    cfg = tmp_path / "rabbitmq.conf"
    cfg.write_text("listeners.tcp.default = 5680\nheartbeat = 0\n")
    s = settings_for(["--config", str(cfg)], {})
    assert (s.host, s.port, s.heartbeat) == ("", 5680, 0)


def test_bad_environment_and_flag_values_name_their_source():
    with pytest.raises(ValueError, match="^LEVERET_PORT: 'x' is not an integer"):
        settings_for([], {"LEVERET_PORT": "x"})
    with pytest.raises(ValueError, match="^--disk-free-limit: invalid size"):
        settings_for(["--disk-free-limit", "lots"], {})
    with pytest.raises(ValueError, match="^LEVERET_LOG_LEVEL: 'loud' is not a log level"):
        settings_for([], {"LEVERET_LOG_LEVEL": "loud"})


def test_which_config_file(tmp_path):
    (tmp_path / "leveret").mkdir()
    default = tmp_path / "leveret" / "rabbitmq.conf"
    assert config_file(None, {"XDG_CONFIG_HOME": str(tmp_path)}) is None      # absent: none
    default.write_text("")
    assert config_file(None, {"XDG_CONFIG_HOME": str(tmp_path)}) == str(default)
    env = {"XDG_CONFIG_HOME": str(tmp_path), "RABBITMQ_CONFIG_FILE": "/etc/rabbitmq/rabbitmq"}
    assert config_file(None, env) == "/etc/rabbitmq/rabbitmq.conf"          # RabbitMQ adds .conf
    env["LEVERET_CONFIG_FILE"] = "/a.conf"
    assert config_file(None, env) == "/a.conf"
    assert config_file("/b.conf", env) == "/b.conf"


def test_rabbitmq_config_file_in_erlang_terms_is_refused(tmp_path):
    f = tmp_path / "rabbitmq.config"
    f.write_text("[].\n")
    with pytest.raises(ConfigError, match="Erlang-term"):
        settings_for([], {"RABBITMQ_CONFIG_FILE": str(f)})


def test_setup_logging_levels_and_file_selectors(tmp_path):
    cfg = tmp_path / "rabbitmq.conf"
    cfg.write_text(f"log.file = {tmp_path / 'l.log'}\nlog.file.level = <warning\nlog.console = false\n"
                   "log.default.level = debug\n")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging(settings_for(["--config", str(cfg)], {}))
        log = logging.getLogger("leveret.test")
        log.debug("d-line")
        log.warning("w-line")
        log.log(25, "n-line")
        for h in root.handlers:
            h.flush()
        text = (tmp_path / "l.log").read_text()
        assert "d-line" in text and "NOTICE" in text and "w-line" not in text
        assert not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
                       for h in root.handlers)
    finally:
        for h in root.handlers[:]:
            root.removeHandler(h)
            h.close()
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])


def test_parser_flags_default_to_none():
    """Every serve flag is None unless given, so it overrides only when given."""
    args = build_parser().parse_args(["serve"])
    assert isinstance(args, argparse.Namespace)
    assert all(getattr(args, f) is None for f in ("host", "port", "data_dir", "heartbeat", "memory_high_watermark",
                                                  "disk_free_limit", "definitions_file", "consumer_timeout",
                                                  "log_console_level", "config"))


def test_relative_limits_and_default_user_settings_reach_the_broker(tmp_path):
    """disk_free_limit.relative (a multiple of RAM), a relative watermark above 1 (RabbitMQ allows
    it), default_user_tags and default_permissions are what the broker uses."""
    s, _ = parse("disk_free_limit.relative = 1.5\nvm_memory_high_watermark.relative = 1.5\n"
                 "default_user_tags.monitoring = true\ndefault_user_tags.administrator = false\n"
                 "default_permissions.configure = ^$\ndefault_permissions.read = .*\n"
                 "default_permissions.write = ^w\n")
    b = Broker(s)
    assert b.monitor.disk_free_limit == int(1.5 * total_memory())
    assert b.monitor.memory_limit == int(1.5 * total_memory())
    assert b.users["guest"].tags == ["monitoring"]
    p = b.access.permissions[("guest", "/")]
    assert (p.configure, p.write, p.read) == ("^$", "^w", ".*")


def test_url_of_a_broker_listening_on_every_interface():
    assert Broker(Settings(host="", port=5)).url == "amqp://guest:guest@127.0.0.1:5/%2F"
    assert Broker(Settings(host="::", port=5)).url == "amqp://guest:guest@[::1]:5/%2F"
    assert Broker(Settings(host="::1", port=5)).url == "amqp://guest:guest@[::1]:5/%2F"
