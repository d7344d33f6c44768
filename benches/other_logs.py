#!/usr/bin/env python3
"""Template mining on software outside loghub: Ophion's miner against
Drain's default configuration (the `drain3` package, as shipped).

The labelled set is generated here from the real message formats of six
kinds of software loghub does not cover: a database (PostgreSQL), a proxy
(nginx error log), an orchestrator (Kubernetes events and kubelet), a
broker (Kafka), an application framework (Spring Boot, whose variables are
often words: user names, cities, bean and class names) and a cache
(Redis). Each line's true template is known; the variables are drawn at
random (numbers, addresses, ids, paths, and words). Grouping accuracy is
loghub's (a line is right when its group holds exactly its template's
lines). Nothing was tuned on this set: Ophion's miner runs its defaults
(chosen on loghub in issue 6), Drain its package defaults.

Usage: other_logs.py --ophion PATH/TO/ophion [--lines 2000] [--seed 1]
Needs `drain3` (`pip install drain3`); not run in CI yet.
"""
import argparse, collections, csv, os, random, subprocess, sys, tempfile

NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
         "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yara"]
CITIES = ["Berlin", "Lisbon", "Osaka", "Lagos", "Quito", "Perth", "Oslo", "Lima", "Pune", "Austin"]
WORDS = ["orders", "users", "payments", "sessions", "inventory", "carts", "invoices", "events"]
BEANS = ["dataSource", "entityManagerFactory", "transactionManager", "objectMapper", "restTemplate",
         "cacheManager", "taskScheduler", "meterRegistry"]
CLASSES = ["com.zaxxer.hikari.HikariDataSource", "org.springframework.orm.jpa.JpaTransactionManager",
           "com.fasterxml.jackson.databind.ObjectMapper", "org.springframework.web.client.RestTemplate",
           "io.micrometer.core.instrument.MeterRegistry"]
EXC = ["IllegalState", "NullPointer", "Timeout", "IllegalArgument", "DataIntegrityViolation"]
TASKS = ["cleanupExpiredSessions", "refreshExchangeRates", "sendDigestMails", "reindexCatalog"]
CONTAINERS = ["api", "worker", "sidecar", "nginx", "redis", "migrate"]
IMAGES = ["registry.example.com/shop/api:1.4.2", "nginx:1.25-alpine", "redis:7.2", "busybox:1.36"]
TOPICS = ["orders", "payments", "clicks", "audit-log", "inventory-updates"]


def ip(r): return "10.%d.%d.%d" % (r.randint(0, 255), r.randint(0, 255), r.randint(1, 254))
def port(r): return str(r.randint(1024, 65535))
def hexs(r, n): return "".join(r.choice("0123456789abcdef") for _ in range(n))
def uuid(r): return "%s-%s-%s-%s-%s" % (hexs(r, 8), hexs(r, 4), hexs(r, 4), hexs(r, 4), hexs(r, 12))
def path(r): return "/" + "/".join(r.choice(WORDS) for _ in range(r.randint(1, 3)))
def pod(r): return "%s-%s-%s" % (r.choice(CONTAINERS), hexs(r, 10), hexs(r, 5))
def secs(r): return "%.3f" % r.uniform(0.001, 30)


SYSTEMS = {
    "PostgreSQL": [
        (8, lambda r: "connection received: host=%s port=%s" % (ip(r), port(r))),
        (8, lambda r: "connection authorized: user=%s database=%s application_name=%s" % (r.choice(NAMES), r.choice(WORDS), r.choice(["psql", "api", "worker"]))),
        (6, lambda r: "disconnection: session time: 0:%02d:%02d.%03d user=%s database=%s host=%s port=%s" % (r.randint(0, 59), r.randint(0, 59), r.randint(0, 999), r.choice(NAMES), r.choice(WORDS), ip(r), port(r))),
        (10, lambda r: "duration: %s ms  statement: SELECT * FROM %s WHERE id = %d" % (secs(r), r.choice(WORDS), r.randint(1, 99999))),
        (2, lambda r: "checkpoint starting: time"),
        (2, lambda r: "checkpoint complete: wrote %d buffers (%.1f%%); 0 WAL file(s) added, %d removed, %d recycled; write=%s s, sync=%s s, total=%s s" % (r.randint(1, 9999), r.uniform(0, 20), r.randint(0, 9), r.randint(0, 9), secs(r), secs(r), secs(r))),
        (3, lambda r: "automatic vacuum of table \"%s.public.%s\": index scans: %d" % (r.choice(WORDS), r.choice(WORDS), r.randint(0, 5))),
        (3, lambda r: "could not receive data from client: Connection reset by peer"),
        (2, lambda r: "relation \"%s\" does not exist at character %d" % (r.choice(WORDS), r.randint(1, 200))),
        (3, lambda r: "duplicate key value violates unique constraint \"%s_pkey\"" % r.choice(WORDS)),
        (2, lambda r: "canceling statement due to statement timeout"),
        (1, lambda r: "database system is ready to accept connections"),
    ],
    "nginx": [
        (6, lambda r: "upstream timed out (110: Connection timed out) while reading response header from upstream, client: %s, server: %s.example.com, request: \"GET %s HTTP/1.1\", upstream: \"http://%s:%s%s\"" % (ip(r), r.choice(WORDS), path(r), ip(r), port(r), path(r))),
        (5, lambda r: "connect() failed (111: Connection refused) while connecting to upstream, client: %s, server: %s.example.com, request: \"POST %s HTTP/1.1\"" % (ip(r), r.choice(WORDS), path(r))),
        (8, lambda r: "open() \"/usr/share/nginx/html%s\" failed (2: No such file or directory), client: %s, server: %s.example.com" % (path(r), ip(r), r.choice(WORDS))),
        (3, lambda r: "client intended to send too large body: %d bytes, client: %s, server: %s.example.com" % (r.randint(10**6, 10**8), ip(r), r.choice(WORDS))),
        (2, lambda r: "worker process %d exited on signal %d" % (r.randint(100, 99999), r.choice([9, 11, 15]))),
        (1, lambda r: "signal process started"),
        (4, lambda r: "limiting requests, excess: %.3f by zone \"%s\", client: %s" % (r.uniform(0, 50), r.choice(["api", "login"]), ip(r))),
        (4, lambda r: "SSL_do_handshake() failed (SSL: error:%s:SSL routines::unsupported protocol) while SSL handshaking, client: %s" % (hexs(r, 8).upper(), ip(r))),
    ],
    "Kubernetes": [
        (8, lambda r: "Started container %s" % r.choice(CONTAINERS)),
        (6, lambda r: "Pulling image \"%s\"" % r.choice(IMAGES)),
        (6, lambda r: "Successfully pulled image \"%s\" in %s (%s including waiting)" % (r.choice(IMAGES), secs(r) + "s", secs(r) + "s")),
        (4, lambda r: "Back-off restarting failed container %s in pod %s_%s(%s)" % (r.choice(CONTAINERS), pod(r), r.choice(WORDS), uuid(r))),
        (4, lambda r: "Liveness probe failed: Get \"http://%s:%s/healthz\": context deadline exceeded" % (ip(r), port(r))),
        (4, lambda r: "Readiness probe failed: HTTP probe failed with statuscode: %d" % r.choice([500, 502, 503])),
        (3, lambda r: "MountVolume.SetUp succeeded for volume \"%s\"" % r.choice(["config", "secrets", "data", "kube-api-access-" + hexs(r, 5)])),
        (5, lambda r: "Created pod: %s" % pod(r)),
        (3, lambda r: "Scaled up replica set %s-%s to %d" % (r.choice(CONTAINERS), hexs(r, 10), r.randint(1, 20))),
        (2, lambda r: "0/%d nodes are available: %d Insufficient cpu, %d Insufficient memory." % (r.randint(3, 50), r.randint(1, 20), r.randint(1, 20))),
    ],
    "Kafka": [
        (8, lambda r: "[Log partition=%s-%d, dir=/var/lib/kafka/data] Rolled new log segment at offset %d in %d ms." % (r.choice(TOPICS), r.randint(0, 11), r.randint(0, 10**9), r.randint(0, 50))),
        (4, lambda r: "[GroupCoordinator %d]: Preparing to rebalance group %s in state PreparingRebalance with old generation %d (__consumer_offsets-%d) (reason: Adding new member consumer-%s-%d-%s with group instance id None)" % (r.randint(0, 5), r.choice(WORDS), r.randint(0, 99), r.randint(0, 49), r.choice(WORDS), r.randint(1, 9), uuid(r))),
        (4, lambda r: "[GroupCoordinator %d]: Stabilized group %s generation %d (__consumer_offsets-%d) with %d members" % (r.randint(0, 5), r.choice(WORDS), r.randint(0, 99), r.randint(0, 49), r.randint(1, 12))),
        (3, lambda r: "[Partition %s-%d broker=%d] Shrinking ISR from %d,%d,%d to %d,%d. Leader: (highWatermark: %d, endOffset: %d). Out of sync replicas: (brokerId: %d, endOffset: %d)." % (r.choice(TOPICS), r.randint(0, 11), r.randint(0, 5), 1, 2, 3, 1, 2, r.randint(0, 10**7), r.randint(0, 10**7), 3, r.randint(0, 10**7))),
        (2, lambda r: "[Controller id=%d] Processing automatic preferred replica leader election" % r.randint(0, 5)),
        (3, lambda r: "[ReplicaFetcher replicaId=%d, leaderId=%d, fetcherId=%d] Error sending fetch request (sessionId=%d, epoch=%d) to node %d:" % (r.randint(0, 5), r.randint(0, 5), r.randint(0, 3), r.randint(10**8, 10**9), r.randint(1, 9999), r.randint(0, 5))),
        (6, lambda r: "Deleted log segment %d for partition %s-%d" % (r.randint(0, 10**9), r.choice(TOPICS), r.randint(0, 11))),
        (3, lambda r: "[Producer clientId=producer-%d] Resetting the last seen epoch of partition %s-%d to %d since the associated topicId changed from null to %s" % (r.randint(1, 9), r.choice(TOPICS), r.randint(0, 11), r.randint(0, 30), hexs(r, 22))),
    ],
    "SpringBoot": [
        (2, lambda r: "Started %sApplication in %s seconds (process running for %s)" % (r.choice(["Order", "User", "Billing"]), secs(r), secs(r))),
        (2, lambda r: "Tomcat started on port %s (http) with context path '%s'" % (port(r), r.choice(["", "/api"]))),
        (3, lambda r: "HikariPool-%d - Starting..." % r.randint(1, 3)),
        (3, lambda r: "HikariPool-%d - Start completed." % r.randint(1, 3)),
        (3, lambda r: "Resolved [org.springframework.web.HttpRequestMethodNotSupportedException: Request method '%s' is not supported]" % r.choice(["PUT", "DELETE", "PATCH"])),
        (6, lambda r: "Failed to process order %s for customer %s: %sException" % (uuid(r), r.choice(NAMES), r.choice(EXC))),
        (10, lambda r: "User %s logged in from %s" % (r.choice(NAMES), r.choice(CITIES))),
        (8, lambda r: "Cache miss for key %s:%s" % (r.choice(WORDS), r.choice(NAMES))),
        (5, lambda r: "Scheduled task %s finished in %d ms" % (r.choice(TASKS), r.randint(1, 9000))),
        (3, lambda r: "Bean '%s' of type [%s] is not eligible for getting processed by all BeanPostProcessors" % (r.choice(BEANS), r.choice(CLASSES))),
        (6, lambda r: "Sending %s notification to %s about %s" % (r.choice(["email", "sms", "push"]), r.choice(NAMES), r.choice(WORDS))),
    ],
    "Redis": [
        (6, lambda r: "%d changes in %d seconds. Saving..." % (r.randint(1, 10000), r.choice([60, 300, 3600]))),
        (6, lambda r: "Background saving started by pid %d" % r.randint(100, 99999)),
        (6, lambda r: "DB saved on disk"),
        (6, lambda r: "Background saving terminated with success"),
        (3, lambda r: "Connection with replica %s:%s lost." % (ip(r), port(r))),
        (3, lambda r: "Synchronization with replica %s:%s succeeded" % (ip(r), port(r))),
        (2, lambda r: "Client id=%d addr=%s:%s laddr=%s:6379 fd=%d name= age=%d idle=%d closed for overcoming of output buffer limits." % (r.randint(1, 99999), ip(r), port(r), ip(r), r.randint(5, 999), r.randint(0, 9999), r.randint(0, 99))),
        (3, lambda r: "Fork CoW for RDB: current %d MB, peak %d MB, average %d MB" % (r.randint(0, 500), r.randint(0, 500), r.randint(0, 500))),
        (2, lambda r: "Accepted %s:%s" % (ip(r), port(r))),
    ],
}


def generate(system, lines, seed):
    r = random.Random("%s-%d" % (system, seed))
    templates = SYSTEMS[system]
    weights = [w for w, _ in templates]
    out = []
    for _ in range(lines):
        i = r.choices(range(len(templates)), weights)[0]
        out.append((i, templates[i][1](r)))
    return out


def ga(truth, pred):
    count = collections.Counter(truth)
    groups = collections.defaultdict(list)
    for i, p in enumerate(pred):
        groups[p].append(i)
    ok = 0
    for idx in groups.values():
        events = {truth[i] for i in idx}
        if len(events) == 1 and len(idx) == count[next(iter(events))]:
            ok += len(idx)
    return ok / len(truth)


def ophion(binary, messages, tmp):
    src, dst = os.path.join(tmp, "in.txt"), os.path.join(tmp, "out.csv")
    with open(src, "w") as f:
        f.write("\n".join(messages) + "\n")
    subprocess.run([binary, "ai", "patterns", "--input", src, "--output", dst], check=True)
    with open(dst, newline="") as f:
        return [row["template_id"] for row in csv.DictReader(f)]


def drain(messages):
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig
    miner = TemplateMiner(config=TemplateMinerConfig())
    return [miner.add_log_message(m)["cluster_id"] for m in messages]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ophion", required=True)
    ap.add_argument("--lines", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for system in SYSTEMS:
            data = generate(system, a.lines, a.seed)
            truth = [t for t, _ in data]
            messages = [m for _, m in data]
            rows.append((system, ga(truth, ophion(a.ophion, messages, tmp)), ga(truth, drain(messages))))
    for system, o, d in rows:
        print("%-12s ophion %.4f drain %.4f" % (system, o, d))
    mo = sum(o for _, o, _ in rows) / len(rows)
    md = sum(d for _, _, d in rows) / len(rows)
    print("mean         ophion %.4f drain %.4f over %d systems" % (mo, md, len(rows)))


if __name__ == "__main__":
    sys.exit(main())
