"""Demo: two scanners share scan.requests; a client sends three files at once (one carries the
EICAR test signature) and matches the verdicts on its exclusive callback queue.
Run it with ``python examples/run.py file_scan_rpc [--url URL]``."""
QUEUES = ("scan.requests",)
EXCHANGES = ()

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def demo(d):
    for n in (1, 2):
        d.start("scanner.py", "--delay-ms", "100", ready="Waiting for scan requests", label=f"scanner{n}")
    files = {"report.txt": b"quarterly numbers\n", "eicar.com": EICAR, "photo.bin": bytes(range(256)) * 8}
    for name, data in files.items():
        (d.tmp / name).write_bytes(data)
    d.run("client.py", "--timeout", "10", *(str(d.tmp / name) for name in files))
