"""`loadtest/run cluster up|down|status`: a production-shaped flashgate on one machine,
from Debian's packages, each piece with its own ports and data directory under
CLUSTER_DIR:

- RabbitMQ: three nodes (fg1..fg3@localhost) joined in one cluster; quorum queues declared
  after the join get all three as members. flashgate is given every node (`amqp.urls`).
- Redis: a primary (AOF, fsync every second) and a replica (AOF), watched by three
  Sentinels (quorum 2); flashgate asks the Sentinels which node is primary.
- PostgreSQL: the machine's one primary, database `flashgate_cluster`.
- flashgate: the Stripe emulator, the catalog, two doors and two webhook receivers behind
  HAProxy (`X-Forwarded-For` added by it and trusted by the doors), three workers.

Everything but PostgreSQL is started here and stopped by `down`, which also drops the
database: the standard services (5432, 6379, 5672) are left as they were.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import procs
import stack
from settings import HOST, Secrets

CLUSTER_DIR = os.environ.get("FLASHGATE_CLUSTER_DIR", "/var/tmp/flashgate-cluster")
DATABASE = "flashgate_cluster"
DATABASE_URL = f"postgres://postgres@{HOST}:5432/{DATABASE}"
RABBIT_NODES = {f"fg{i}": (5680 + i, 25680 + i) for i in (1, 2, 3)}  # name → (amqp, dist)
REDIS = {"primary": 6391, "replica": 6392}
SENTINELS = (26391, 26392, 26393)
SENTINEL_MASTER = "flashgate"
PORTS = {
    "balancer-doors": 18210, "door-1": 18211, "door-2": 18212,
    "door-3": 18213,  # started only by `cluster scale`
    "balancer-webhooks": 18215, "webhook-1": 18216, "webhook-2": 18217,
    "catalog": 18218, "stripe": 18220,
    "worker-1": 18221, "worker-2": 18222, "worker-3": 18223,
}
ROLES = ("stripe", "catalog", "door-1", "door-2", "webhook-1", "webhook-2",
         "worker-1", "worker-2", "worker-3")
RABBIT_BIN = "/usr/lib/rabbitmq/bin"
# Links a partition can cut (partitions.py): role/dependency → [(listen, upstream)]. The role
# reaches that dependency only through them; every other process reaches it directly.
PARTITIONS_PORT = 18230
LINKS = {
    "worker-1/postgres": [(18231, 5432)],
    "door-1/postgres": [(18232, 5432)],
    "webhook-1/postgres": [(18233, 5432)],
    "worker-2/rabbitmq": [(18234 + i, port) for i, (port, _) in enumerate(RABBIT_NODES.values())],
    "door-2/rabbitmq": [(18237 + i, port) for i, (port, _) in enumerate(RABBIT_NODES.values())],
}
# Off for measurements (scale.py): a relay in the path would be measured with the role.
ROUTE_THROUGH_LINKS = True


def url(name):
    return f"http://{HOST}:{PORTS[name]}"


def path(*parts):
    return os.path.join(CLUSTER_DIR, *parts)


def say(message):
    print(f"cluster: {message}", flush=True)


# ---- RabbitMQ ---------------------------------------------------------------------------

def rabbit_env(node):
    amqp, dist = RABBIT_NODES[node]
    home = path("rabbitmq")
    return dict(os.environ, HOME=home, RABBITMQ_NODENAME=f"{node}@localhost",
                RABBITMQ_NODE_PORT=str(amqp), RABBITMQ_DIST_PORT=str(dist),
                RABBITMQ_MNESIA_BASE=path("rabbitmq", node, "mnesia"),
                RABBITMQ_LOG_BASE=path("rabbitmq", node, "log"),
                RABBITMQ_CONFIG_FILE=path("rabbitmq", node, "rabbitmq.conf"),
                RABBITMQ_ENABLED_PLUGINS_FILE=path("rabbitmq", node, "enabled_plugins"),
                RABBITMQ_PID_FILE=path("rabbitmq", node, "pid"))


def rabbitmqctl(node, *args, timeout=120, check=True):
    return subprocess.run([f"{RABBIT_BIN}/rabbitmqctl", "-q", "-n", f"{node}@localhost", *args],
                          env=rabbit_env(node), capture_output=True, text=True, timeout=timeout,
                          check=check)


def rabbit_prepare():
    home = path("rabbitmq")
    os.makedirs(home, exist_ok=True)
    cookie = os.path.join(home, ".erlang.cookie")
    if not os.path.exists(cookie):
        # The nodes and rabbitmqctl must share one cookie; a fresh one for this cluster.
        with open(cookie, "w") as f:
            f.write(Secrets().ticket_secret[:20].upper())
        os.chmod(cookie, 0o400)
    for node, (amqp, _) in RABBIT_NODES.items():
        os.makedirs(path("rabbitmq", node), exist_ok=True)
        with open(path("rabbitmq", node, "rabbitmq.conf"), "w") as f:
            # Quorum queues get every node (RabbitMQ's default initial group size is 3).
            f.write(f"listeners.tcp.local = {HOST}:{amqp}\nloopback_users = none\n")
        with open(path("rabbitmq", node, "enabled_plugins"), "w") as f:
            f.write("[].\n")


def rabbit_start(node):
    """Starts one node (its data kept) and waits until it runs."""
    subprocess.run([f"{RABBIT_BIN}/rabbitmq-server", "-detached"], env=rabbit_env(node), cwd=path("rabbitmq"),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=60)
    rabbitmqctl(node, "wait", path("rabbitmq", node, "pid"), "--timeout", "90", timeout=120)


def rabbit_pid(node):
    try:
        with open(path("rabbitmq", node, "pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def rabbit_up():
    rabbit_prepare()
    for node in RABBIT_NODES:
        if not procs.listening(RABBIT_NODES[node][0]):
            rabbit_start(node)
    members = rabbitmqctl("fg1", "cluster_status", "--formatter", "json").stdout
    running = set(json.loads(members).get("running_nodes", []))
    for node in ("fg2", "fg3"):
        if f"{node}@localhost" not in running:
            rabbitmqctl(node, "stop_app")
            rabbitmqctl(node, "join_cluster", "fg1@localhost")
            rabbitmqctl(node, "start_app")
    # Dead-lettering quorum queues at least once needs every feature flag.
    rabbitmqctl("fg1", "enable_feature_flag", "all")


def rabbit_down():
    for node in RABBIT_NODES:
        if procs.listening(RABBIT_NODES[node][0]) or rabbit_pid(node):
            rabbitmqctl(node, "stop", timeout=60, check=False)
        pid = rabbit_pid(node)
        if pid:
            kill(pid, signal.SIGKILL)


# ---- Redis ------------------------------------------------------------------------------

def redis_conf(role, port):
    lines = [f"port {port}", f"bind {HOST}", f"dir {path('redis', role)}", "daemonize yes",
             f"pidfile {path('redis', role, 'pid')}", f"logfile {path('redis', role, 'log')}",
             # The ticket state: every write in the AOF, fsynced each second; no RDB snapshots.
             "appendonly yes", "appendfsync everysec", 'save ""']
    if role == "replica":
        lines.append(f"replicaof {HOST} {REDIS['primary']}")
    return lines


def sentinel_conf(i, port):
    return [f"port {port}", f"bind {HOST}", f"dir {path('redis', f'sentinel-{i}')}", "daemonize yes",
            f"pidfile {path('redis', f'sentinel-{i}', 'pid')}",
            f"logfile {path('redis', f'sentinel-{i}', 'log')}",
            f"sentinel monitor {SENTINEL_MASTER} {HOST} {REDIS['primary']} 2",
            f"sentinel down-after-milliseconds {SENTINEL_MASTER} 2000",
            f"sentinel failover-timeout {SENTINEL_MASTER} 10000",
            f"sentinel parallel-syncs {SENTINEL_MASTER} 1"]


def redis_start(name, lines, sentinel=False):
    os.makedirs(path("redis", name), exist_ok=True)
    conf = path("redis", name, "redis.conf")
    if not os.path.exists(conf):  # Sentinels rewrite their file: keep what they learned
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
    subprocess.run(["redis-server", conf] + (["--sentinel"] if sentinel else []), check=True,
                   stdout=subprocess.DEVNULL, timeout=30)


def redis_up():
    for role, port in REDIS.items():
        if not procs.listening(port):
            redis_start(role, redis_conf(role, port))
            wait_port(port, f"Redis {role}")
    for i, port in enumerate(SENTINELS, 1):
        if not procs.listening(port):
            redis_start(f"sentinel-{i}", sentinel_conf(i, port), sentinel=True)
            wait_port(port, f"Sentinel {i}")


def redis_primary():
    """The port the Sentinels name as primary now (None if none answers)."""
    for port in SENTINELS:
        out = subprocess.run(["redis-cli", "-h", HOST, "-p", str(port), "SENTINEL",
                              "get-master-addr-by-name", SENTINEL_MASTER],
                             capture_output=True, text=True, timeout=10).stdout.split()
        if len(out) == 2:
            return int(out[1])
    return None


def redis_down():
    for name in [f"sentinel-{i}" for i in (1, 2, 3)] + list(REDIS):
        pid = read_pid(path("redis", name, "pid"))
        if pid:
            kill(pid, signal.SIGKILL)


# ---- flashgate and the balancer ---------------------------------------------------------

def secrets():
    """The cluster's secrets, made at `up` and kept with it."""
    file = path("secrets.json")
    if os.path.exists(file):
        with open(file) as f:
            return Secrets(**json.load(f))
    made = Secrets()
    with open(file, "w") as f:
        json.dump(made.__dict__, f)
    return made


# Settings a measurement changes for the processes it (re)starts (scale.py).
OVERRIDES = {}


def env(binary_dir):
    s = secrets()
    amqp = [f"amqp://guest:guest@{HOST}:{port}/%2f" for port, _ in RABBIT_NODES.values()]
    sentinels = [f"redis://{HOST}:{port}/" for port in SENTINELS]
    e = {k: v for k, v in os.environ.items() if not k.startswith("FLASHGATE_")}
    e.update({
        "NO_COLOR": "1",
        # One access-log line per request would cost the measured roles CPU at these rates.
        "FLASHGATE_TELEMETRY__LOG_FILTER": "info,sqlx=warn,lapin=warn,hyper=warn,stripe=error,flashgate::access=off",
        "FLASHGATE_DATABASE__URL": DATABASE_URL,
        "FLASHGATE_AMQP__URL": amqp[0],
        "FLASHGATE_AMQP__URLS": "[" + ",".join(f'"{u}"' for u in amqp) + "]",
        "FLASHGATE_REDIS__URL": f"redis://{HOST}:{REDIS['primary']}/0",
        "FLASHGATE_REDIS__SENTINELS": "[" + ",".join(f'"{u}"' for u in sentinels) + "]",
        "FLASHGATE_REDIS__SENTINEL_MASTER": SENTINEL_MASTER,
        "FLASHGATE_ADMIN_TOKEN": s.admin_token,
        "FLASHGATE_ADMISSION__TICKET_SECRET": s.ticket_secret,
        "FLASHGATE_ADMISSION__TRUSTED_PROXIES": f'["{HOST}"]',
        "FLASHGATE_CATALOG__LISTEN": f"{HOST}:{PORTS['catalog']}",
        "FLASHGATE_WORKER__SWEEP_INTERVAL_MS": "250",
        "FLASHGATE_STRIPE__API_KEY": "sk_test_cluster",
        "FLASHGATE_STRIPE__BASE_URL": f"{url('stripe')}/",
        "FLASHGATE_WEBHOOK__SECRETS": f"[{s.webhook_secret}]",
        "FLASHGATE_STRIPE_SIM__LISTEN": f"{HOST}:{PORTS['stripe']}",
        "FLASHGATE_STRIPE_SIM__WEBHOOK_URL": f"{url('balancer-webhooks')}/v1/stripe/webhook",
        "FLASHGATE_STRIPE_SIM__WEBHOOK_SECRET": s.webhook_secret,
    })
    e.update(stack.overrides())
    e.update(OVERRIDES)
    return e


def role_argv(binary_dir, role):
    kind = role.split("-")[0]
    command = {"stripe": "stripe-sim", "door": "admission"}.get(kind, kind)
    return [os.path.join(binary_dir, "flashgate"), command]


def role_env(binary_dir, role):
    e = env(binary_dir)
    listen = f"{HOST}:{PORTS[role]}"
    kind = role.split("-")[0]
    if kind == "door":
        e["FLASHGATE_ADMISSION__LISTEN"] = listen
    elif kind == "webhook":
        e["FLASHGATE_WEBHOOK__LISTEN"] = listen
    elif kind == "worker":
        e["FLASHGATE_WORKER__LISTEN"] = listen
    for name, pairs in LINKS.items() if ROUTE_THROUGH_LINKS else ():
        owner, dependency = name.split("/")
        if owner != role:
            continue
        if dependency == "postgres":
            e["FLASHGATE_DATABASE__URL"] = DATABASE_URL.replace(":5432/", f":{pairs[0][0]}/")
        else:
            urls = [f"amqp://guest:guest@{HOST}:{listen}/%2f" for listen, _ in pairs]
            e["FLASHGATE_AMQP__URL"] = urls[0]
            e["FLASHGATE_AMQP__URLS"] = "[" + ",".join(f'"{u}"' for u in urls) + "]"
    return e


def partitions_up():
    if procs.listening(PARTITIONS_PORT):
        return
    log = open(path("logs", "partitions.log"), "ab")
    child = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "partitions.py"),
                              str(PARTITIONS_PORT), json.dumps(LINKS)],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    with open(path("partitions.pid"), "w") as f:
        f.write(str(child.pid))
    wait_port(PARTITIONS_PORT, "the partition relays")


def partitions(command):
    """Sends one command to the relays (`cut NAME`, `heal NAME`, `heal all`, `status`)."""
    import socket
    with socket.create_connection((HOST, PARTITIONS_PORT), timeout=5) as s:
        s.sendall((command + "\n").encode())
        answer = s.makefile().readline().strip()
    if answer.startswith("error"):
        raise RuntimeError(f"partitions: {answer}")
    return answer


def start_role(binary_dir, role):
    """Starts one flashgate process in its own session (it outlives this command); its pid
    goes to CLUSTER_DIR/<role>.pid and its output to <role>.log."""
    log = open(path("logs", f"{role}.log"), "ab")
    child = subprocess.Popen(role_argv(binary_dir, role), env=role_env(binary_dir, role),
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    with open(path(f"{role}.pid"), "w") as f:
        f.write(str(child.pid))
    return child


def ready_url(role):
    return f"{url(role)}/_sim/stats" if role == "stripe" else f"{url(role)}/readyz"


def role_pid(role):
    return read_pid(path(f"{role}.pid"))


def haproxy_conf():
    def backend(name, servers):
        lines = [f"backend {name}", "  balance roundrobin", "  option httpchk GET /readyz",
                 "  default-server inter 500ms fall 2 rise 1"]
        lines += [f"  server {s} {HOST}:{PORTS[s]} check" for s in servers]
        return lines
    lines = ["global", "  maxconn 8000", f"  pidfile {path('haproxy.pid')}", "  daemon",
             "defaults", "  mode http", "  timeout connect 1s", "  timeout client 30s",
             "  timeout server 30s", "  option forwardfor", "  option redispatch", "  retries 2",
             "frontend doors", f"  bind {HOST}:{PORTS['balancer-doors']}", "  default_backend doors",
             "frontend webhooks", f"  bind {HOST}:{PORTS['balancer-webhooks']}",
             "  default_backend webhooks"]
    lines += backend("doors", ["door-1", "door-2"]) + backend("webhooks", ["webhook-1", "webhook-2"])
    return "\n".join(lines) + "\n"


def haproxy_up():
    if procs.listening(PORTS["balancer-doors"]):
        return
    if not shutil.which("haproxy"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "haproxy"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                       stdout=subprocess.DEVNULL, timeout=600)
    with open(path("haproxy.cfg"), "w") as f:
        f.write(haproxy_conf())
    subprocess.run(["haproxy", "-f", path("haproxy.cfg")], check=True, timeout=30)
    wait_port(PORTS["balancer-doors"], "HAProxy")


def flashgate_up(binary_dir):
    os.makedirs(path("logs"), exist_ok=True)
    exists = subprocess.run(["psql", "-h", HOST, "-U", "postgres", "-d", "postgres", "-qtAc",
                             f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
                            capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    if not exists:
        subprocess.run(["psql", "-h", HOST, "-U", "postgres", "-d", "postgres", "-qc",
                        f'CREATE DATABASE "{DATABASE}"'], check=True, timeout=60)
    partitions_up()
    subprocess.run([os.path.join(binary_dir, "flashgate"), "migrate"], env=env(binary_dir),
                   check=True, timeout=120, stdout=subprocess.DEVNULL)
    for role in ROLES:
        ensure_role(binary_dir, role)
    haproxy_up()


def ensure_role(binary_dir, role, wait=60):
    """Starts `role` unless it runs, and waits until it is ready."""
    pid = role_pid(role)
    if not (pid and alive(pid)):
        start_role(binary_dir, role)
    procs.wait_http(ready_url(role), wait, lambda: alive(role_pid(role)))


def flashgate_down():
    for role in reversed(ROLES + ("door-3",)):
        pid = role_pid(role)
        if pid and alive(pid):
            kill(pid, signal.SIGTERM)
    deadline = time.time() + 15
    for role in ROLES + ("door-3",):
        pid = role_pid(role)
        while pid and alive(pid) and time.time() < deadline:
            time.sleep(0.1)
        if pid and alive(pid):
            kill(pid, signal.SIGKILL)
    for name in ("haproxy.pid", "partitions.pid"):
        pid = read_pid(path(name))
        if pid:
            kill(pid, signal.SIGTERM)
    subprocess.run(["psql", "-h", HOST, "-U", "postgres", "-d", "postgres", "-qc",
                    f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'], timeout=60,
                   env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))


# ---- helpers and commands ---------------------------------------------------------------

def read_pid(file):
    try:
        with open(file) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie child of this process counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def wait_port(port, name, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if procs.listening(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on {port} within {seconds} s")


def up(binary_dir):
    os.makedirs(CLUSTER_DIR, exist_ok=True)
    say("RabbitMQ: 3 nodes")
    rabbit_up()
    say("Redis: primary, replica, 3 Sentinels")
    redis_up()
    say("flashgate: emulator, catalog, 2 doors, 2 webhooks, 3 workers; HAProxy")
    flashgate_up(binary_dir)
    status()


def down():
    if not os.path.isdir(CLUSTER_DIR):
        say("nothing to take down")
        return
    flashgate_down()
    redis_down()
    rabbit_down()
    shutil.rmtree(CLUSTER_DIR, ignore_errors=True)
    say("down; standard services untouched")


def status():
    """One line per piece: up or down, and where."""
    rows = []
    for node, (amqp, _) in RABBIT_NODES.items():
        rows.append((f"rabbitmq {node}@localhost", f"amqp://{HOST}:{amqp}", procs.listening(amqp)))
    primary = redis_primary()
    for role, port in REDIS.items():
        what = "primary" if port == primary else "replica"
        rows.append((f"redis {role} (now {what})", f"redis://{HOST}:{port}", procs.listening(port)))
    for i, port in enumerate(SENTINELS, 1):
        rows.append((f"sentinel {i}", f"redis://{HOST}:{port}", procs.listening(port)))
    rows.append(("postgresql", DATABASE_URL, procs.listening(5432)))
    for name in ("balancer-doors", "balancer-webhooks") + ROLES:
        rows.append((name, url(name), procs.listening(PORTS[name])))
    rows.append(("partition relays (control)", f"tcp://{HOST}:{PARTITIONS_PORT}",
                 procs.listening(PARTITIONS_PORT)))
    for name, where, ok in rows:
        print(f"  {'up  ' if ok else 'DOWN'}  {name:<28} {where}")
    return all(ok for _, _, ok in rows)


def main(argv, binary_dir, short=False):
    if not argv or argv[0] not in ("up", "down", "status", "scale"):
        sys.exit("usage: loadtest/run cluster up|down|status|scale")
    if argv[0] == "scale":
        import scale
        return scale.main(binary_dir, short)
    if argv[0] == "up":
        up(binary_dir)
    elif argv[0] == "down":
        down()
    else:
        sys.exit(0 if status() else 1)
