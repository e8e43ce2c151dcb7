#!/usr/bin/env python3
"""knot-hsm benchmarks; run through bench/run.sh, which builds what is needed.

Every figure in doc/benchmarks.rst comes from one run of this script on one
machine; ratios are measured side by side in that run. Results of every
repetition go to RESULTS (TSV) in the work directory; the report shows
median, min and max."""
import argparse, os, platform, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time

CARD_SIGN_MS = 170       # Nitrokey HSM 2: ECDSA P-256 signature
CARD_LOGIN_MS = 100      # cardsim default login latency
CARD_KEYGEN_MS = 6000    # cardsim default key generation latency
CARD_LABEL = "SmartCard-HSM (UserPIN)"
PIN = "648219"
SO_PIN = "3537363231383830"
YEAR = 365 * 86400

def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

class Bench:
    def __init__(self, a):
        self.top, self.build, self.quick, self.check = a.top, a.build, a.quick, a.check
        self.knot_hsm = os.path.join(self.build, "keymgr-ext/knot-hsm")
        self.cardsim = os.path.join(self.build, "tests/cardsim/libcardsim.so")
        self.work = tempfile.mkdtemp(prefix="knot-hsm-bench.")
        self.results = []          # (bench, case, metric, value)
        self.notes = {}
        self.knotds = []
        self.softhsm = next(p for p in ["/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                                        "/usr/lib/softhsm/libsofthsm2.so"] if os.path.exists(p))
        self.only = set(a.only.split(",")) if a.only else None

    # -- helpers ------------------------------------------------------------
    def add(self, bench, case, metric, value):
        self.results.append((bench, case, metric, value))
        with open(os.path.join(self.work, "results.tsv"), "a") as f:
            f.write(f"{bench}\t{case}\t{metric}\t{value}\n")

    def run(self, cmd, env=None, check=True, input=None):
        """Run cmd; self.last_rss_mb is then its peak RSS (wait4: the largest of
        the process and the children it waited for, such as keymgr)."""
        e = dict(os.environ); e.update(env or {})
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, env=e, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        got = {}
        readers = [threading.Thread(target=lambda k, f: got.__setitem__(k, f.read()), args=(k, f))
                   for k, f in (("out", p.stdout), ("err", p.stderr))]
        for t in readers: t.start()
        if input: p.stdin.write(input)
        p.stdin.close()
        for t in readers: t.join()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        p.stdout, p.stderr = got["out"], got["err"]
        dt = time.monotonic() - t0
        self.last_rss_mb = ru.ru_maxrss / 1024
        if check and (p.returncode != 0 or re.search(r"^error:", p.stdout + p.stderr, re.M)):
            raise RuntimeError(f"{' '.join(cmd)} -> {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
        return dt, p.stdout

    def free_port(self):
        s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
        return port

    def env_of(self, d):
        return {"SOFTHSM2_CONF": f"{d}/softhsm2.conf", "KHSM_CARDSIM_CONF": f"{d}/cardsim.conf",
                "KHSM_LOCK_FILE": f"{d}/knot-hsm.lock", "TMPDIR": d}

    def token_init(self, d, label):
        os.makedirs(f"{d}/tokens", exist_ok=True)
        with open(f"{d}/softhsm2.conf", "w") as f:
            f.write(f"directories.tokendir = {d}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
        self.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN,
                  "--so-pin", SO_PIN], env=self.env_of(d))
        fd = os.open(f"{d}/card.pin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, PIN.encode()); os.close(fd)

    def card_conf(self, d, scale, extra=()):
        with open(f"{d}/cardsim.conf", "w") as f:
            f.write(f"latency_scale = {scale}\ncounter_file = {d}/counter\n")
            f.write(f"latency_sign_ms = {CARD_SIGN_MS}\nlatency_login_ms = {CARD_LOGIN_MS}\n")
            f.write(f"latency_keygen_ms = {CARD_KEYGEN_MS}\n")
            for line in extra: f.write(line + "\n")
        if os.path.exists(f"{d}/counter"): os.unlink(f"{d}/counter")

    def counter(self, d):
        sig = log_ok = 0
        if os.path.exists(f"{d}/counter"):
            for line in open(f"{d}/counter"):
                if line.startswith("sign "): sig += 1
                elif line.startswith("login ok"): log_ok += 1
        return sig, log_ok

    def write_zone(self, path, zone, n):
        with open(path, "w") as f:
            f.write(f"$ORIGIN {zone}.\n$TTL 3600\n@ SOA ns1 hostmaster 1 3600 900 604800 300\n@ NS ns1\nns1 A 192.0.2.1\n")
            for i in range(max(0, n - 3)):
                f.write(f"h{i} A 198.51.{(i >> 8) & 255}.{i & 255}\n")

    # -- the offline setup (knot-hsm policy + KSK on cardsim) ----------------
    def offline_setup(self, d, zones, port=None, zonedir=None, shared=False, policy=()):
        os.makedirs(f"{d}/keys", exist_ok=True)
        self.token_init(d, "softhsm under cardsim")
        self.card_conf(d, 0.001)
        env = self.env_of(d)
        _, stanza = self.run([self.knot_hsm, "keystore", "--module", self.cardsim, "--token", CARD_LABEL,
                              "--pin-file", f"{d}/card.pin", "--id", "card"], env=env)
        def conf(zone_lines, include):
            z = "".join(f"  - domain: {x}.\n" for x in zones)
            srv = f"server:\n    rundir: {d}\n" + (f"    listen: 127.0.0.1@{port}\n" if port else "")
            storage = zonedir or d
            text = (f"{srv}database:\n    storage: {d}\n    kasp-db: {d}/keys\n"
                    f"log:\n  - target: {d}/knotd.log\n    any: info\n{stanza}\n{include}\n"
                    f"template:\n  - id: default\n    storage: {storage}\n    file: %s.zone\n"
                    f"    zonefile-sync: -1\n    journal-content: none\n{zone_lines}\nzone:\n{z}")
            open(f"{d}/knot.conf", "w").write(text)
        conf("", "")
        opts = list(policy) + (["shared-ksk=yes"] if shared else [])
        _, out = self.run([self.knot_hsm, "-c", f"{d}/knot.conf", *zones, "policy", *opts,
                           "--write", f"{d}/knot-hsm.conf"], env=env)
        conf("    dnssec-signing: on\n    dnssec-policy: knot-hsm", f"include: {d}/knot-hsm.conf")
        m = re.search(r"card signatures per zone and year: (\d+)", out)
        return env, (int(m.group(1)) if m else None)

    def ksk_for_all(self, d, env, zones):
        """One card KSK (generated on cardsim), shared by every zone through keymgr."""
        kc = f"{d}/knot-hsm-ksk.conf"
        self.run([self.knot_hsm, "-c", kc, zones[0], "generate"], env=env)
        _, out = self.run(["keymgr", "-c", kc, zones[0] + ".", "list"], env=env)
        kid = out.split()[0]
        # one command for the rest: every zone's KASP listed once, each run on its zone's cut
        if zones[1:]:
            self.run([self.knot_hsm, "-c", kc, *zones[1:], "import", f"id={kid}"], env=env)

    def snapshot(self, d):
        shutil.rmtree(d + ".snap", ignore_errors=True)
        shutil.copytree(d, d + ".snap", symlinks=True)

    def restore(self, d):
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(d + ".snap", d, symlinks=True)

    # -- 1. ceremony efficiency -----------------------------------------------
    def bench_ceremony(self):
        # The ratio shows whether the card waits for the ZSK side: scales at
        # which the card gets faster than keymgr on this machine (about 0.4 s
        # of keymgr runs per zone) measure keymgr instead (see the 0.1 rows).
        plan = [(10, 0.3, 1), (100, 0.3, 2), (1000, 0.1, 1)] if self.quick else \
               [(10, 1.0, 3), (100, 1.0, 2), (100, 0.3, 3), (100, 0.1, 3), (1000, 0.1, 2), (10000, 0.1, 1)]
        kplan = [(10, 0.3, 1)] if self.quick else [(10, 1.0, 2), (100, 0.3, 1)]
        for n, scale, reps in plan:
            self.ceremony_case(n, scale, reps, "card")
        for n, scale, reps in kplan:
            self.ceremony_case(n, scale, reps, "keymgr")

    def ceremony_case(self, n, scale, reps, signer):
        d = f"{self.work}/cer{n}-{signer}"
        zones = [f"z{i}.example" for i in range(n)]
        log(f"ceremony: {n} zones, latency_scale {scale}, signer={signer}: setup")
        env, _ = self.offline_setup(d, zones)
        self.ksk_for_all(d, env, zones)
        self.snapshot(d)
        case = f"{n} zones, scale {scale}, signer={signer}"
        for rep in range(reps):
            # SoftHSM, cardsim's store, sometimes shows its token as absent to
            # one process while another opens it (SoftHSMv2 issue #757); the
            # ceremony then stops at that zone, as it would for a card that
            # went away. Such a rep starts again from the snapshot (twice at
            # most), and the report counts the restarts.
            for attempt in range(3):
                self.restore(d)
                self.card_conf(d, scale)
                try:
                    wall, out = self.run([self.knot_hsm, "-c", f"{d}/knot.conf", *zones, "ceremony",
                                          "until=+90d", f"signer={signer}"], env=env)
                    break
                except RuntimeError as e:
                    if "token not available" not in str(e) or attempt == 2:
                        raise
                    log(f"  rep {rep + 1}/{reps}: SoftHSM token briefly not available to a second process; "
                        "restarting the rep from its snapshot")
                    self.add("ceremony", case, "restarts", 1)
            sigs, logins = self.counter(d)
            bound = (sigs * CARD_SIGN_MS + logins * CARD_LOGIN_MS) * scale / 1000
            log(f"  rep {rep + 1}/{reps}: {wall:.2f} s, {sigs} signatures, {logins} logins, card-bound {bound:.2f} s, ratio {wall / bound:.3f}")
            self.add("ceremony", case, "wall_s", wall)
            self.add("ceremony", case, "card_bound_s", bound)
            self.add("ceremony", case, "ratio", wall / bound)
            self.add("ceremony", case, "signatures", sigs)
            self.add("ceremony", case, "logins", logins)
            self.add("ceremony", case, "per_zone_s", wall / n)
            self.add("ceremony", case, "rss_mb", self.last_rss_mb)
        if signer == "card":
            self.monitoring(d, env, zones, scale)
        shutil.rmtree(d + ".snap", ignore_errors=True); shutil.rmtree(d, ignore_errors=True)

    def monitoring(self, d, env, zones, scale):
        """What a monitor runs after the ceremony, over every zone: status
        (exit 0-2 are the plugin states), keys (the card, one login), ds."""
        n = len(zones)
        case = f"{n} zones"
        conf, kconf = f"{d}/knot.conf", f"{d}/knot-hsm-ksk.conf"
        for name, cmd, check in (
                ("status", [self.knot_hsm, "-c", conf, "status"], False),
                ("keys", [self.knot_hsm, "-c", conf, "keys"], True),
                ("ds", [self.knot_hsm, "-c", kconf, *zones, "ds"], True)):
            wall, _ = self.run(cmd, env=env, check=check)
            log(f"  {name} over {n} zones: {wall:.2f} s ({wall / n * 1000:.1f} ms per zone)")
            self.add("monitoring", case, name, wall)
        self.add("monitoring", case, "zones", n)
        self.add("monitoring", case, "scale", scale)

    # -- 1b. several cards ------------------------------------------------------
    def cards_setup(self, d, zones, ncards):
        """ncards cardsim cards in one SoftHSM: card k is a copy of libcardsim.so
        (and of SoftHSM) with its conf beside it (tests/cardsim/README.md), its
        keystore cardK; zone i is on card i % ncards (a KSK-side policy per
        card), one KSK per card shared by its zones."""
        os.makedirs(f"{d}/keys", exist_ok=True)
        env = self.env_of(d)
        stanzas = []
        for k in range(ncards):
            cd = f"{d}/card{k}"
            os.makedirs(cd, exist_ok=True)
            if k == 0:
                self.token_init(d, "card 0")
            else:
                self.run(["softhsm2-util", "--init-token", "--free", "--label", f"card {k}", "--pin", PIN,
                          "--so-pin", SO_PIN], env=env)
            shutil.copy(self.cardsim, f"{cd}/libcardsim.so")
            shutil.copy(self.softhsm, f"{cd}/libsofthsm2.so")
            self.cards_conf(d, k, 0.001)
            _, st = self.run([self.knot_hsm, "keystore", "--module", f"{cd}/libcardsim.so", "--token", f"Card {k}",
                              "--pin-file", f"{d}/card.pin", "--id", f"card{k}"], env=env)
            stanzas.append(st if k == 0 else re.sub(r"^keystore:\n", "", st))
        stanza = "\n".join(stanzas)
        def conf(zone_lines, include):
            z = "".join(f"  - domain: {x}.\n" for x in zones)
            text = (f"server:\n    rundir: {d}\ndatabase:\n    storage: {d}\n    kasp-db: {d}/keys\n"
                    f"{stanza}\n{include}\ntemplate:\n  - id: default\n    storage: {d}\n"
                    f"    file: %s.zone\n{zone_lines}\nzone:\n{z}")
            open(f"{d}/knot.conf", "w").write(text)
        conf("", "")
        self.run([self.knot_hsm, "-c", f"{d}/knot.conf", *zones, "policy", "keystore=card0",
                  "--write", f"{d}/knot-hsm.conf"], env=env)
        conf("    dnssec-signing: on\n    dnssec-policy: knot-hsm", f"include: {d}/knot-hsm.conf")
        # The KSK side: one policy per card, each zone on its card's.
        kc = f"{d}/knot-hsm-ksk.conf"
        text = open(kc).read()
        pol = re.search(r"  - id: knot-hsm-ksk\n(    .*\n)+", text).group(0)
        extra = "".join(pol.replace("id: knot-hsm-ksk", f"id: knot-hsm-ksk-{k}").replace("keystore: card0", f"keystore: card{k}")
                        for k in range(1, ncards))
        text = text.replace(pol, pol + extra)
        for i, z in enumerate(zones):
            if i % ncards:
                text = text.replace(f"  - domain: {z}.\n    dnssec-policy: knot-hsm-ksk\n",
                                    f"  - domain: {z}.\n    dnssec-policy: knot-hsm-ksk-{i % ncards}\n")
        open(kc, "w").write(text)
        for k in range(ncards):
            mine = [z for i, z in enumerate(zones) if i % ncards == k]
            self.ksk_for_all(d, env, mine)
        return env

    def cards_conf(self, d, k, scale):
        cd = f"{d}/card{k}"
        with open(f"{cd}/libcardsim.so.conf", "w") as f:
            f.write(f"latency_scale = {scale}\ncounter_file = {cd}/counter\n")
            f.write(f"latency_sign_ms = {CARD_SIGN_MS}\nlatency_login_ms = {CARD_LOGIN_MS}\n")
            f.write(f"latency_keygen_ms = {CARD_KEYGEN_MS}\nmodule = {cd}/libsofthsm2.so\n")
            f.write(f"real_label = card {k}\nlabel = Card {k}\nstate_file = {cd}/state\n")
        if os.path.exists(f"{cd}/counter"): os.unlink(f"{cd}/counter")

    def bench_cards(self):
        # The same zones on 1, 2 and 4 cards, the card the limit: real card
        # latency (scale 1.0), so that the ZSK side (keymgr, on 2 cores) keeps
        # ahead of 4 cards. Throughput: zones per second of wall time.
        n, scale, reps = (8, 1.0, 1) if self.quick else (40, 1.0, 2)
        zones = [f"c{i}.example" for i in range(n)]
        for ncards in (1, 2, 4):
            d = f"{self.work}/cards{ncards}"
            log(f"cards: {n} zones on {ncards} card(s), latency_scale {scale}: setup")
            env = self.cards_setup(d, zones, ncards)
            self.snapshot(d)
            case = f"{ncards} card(s)"
            for rep in range(reps):
                self.restore(d)
                for k in range(ncards): self.cards_conf(d, k, scale)
                wall, out = self.run([self.knot_hsm, "-c", f"{d}/knot.conf", *zones, "ceremony", "until=+90d"], env=env)
                per = []
                for k in range(ncards):
                    sig = logins = 0
                    for line in open(f"{d}/card{k}/counter"):
                        if line.startswith("sign "): sig += 1
                        elif line.startswith("login ok"): logins += 1
                    per.append((sig, logins))
                bound = max(s_ * CARD_SIGN_MS + l_ * CARD_LOGIN_MS for s_, l_ in per) * scale / 1000
                log(f"  rep {rep + 1}/{reps}: {wall:.2f} s, {n / wall:.2f} zones/s, signatures per card "
                    f"{[p[0] for p in per]}, logins {[p[1] for p in per]}, card-bound {bound:.2f} s")
                self.add("cards", case, "wall_s", wall)
                self.add("cards", case, "zones_per_s", n / wall)
                self.add("cards", case, "card_bound_s", bound)
                self.add("cards", case, "signatures", sum(p[0] for p in per))
                self.add("cards", case, "logins", sum(p[1] for p in per))
                self.add("cards", case, "zones", n)
                self.add("cards", case, "scale", scale)
            shutil.rmtree(d + ".snap", ignore_errors=True); shutil.rmtree(d, ignore_errors=True)

    # -- 2. card signatures per zone-year -------------------------------------
    def bench_zoneyear(self):
        d = f"{self.work}/year"
        zones = ["example.com"]
        log("zone-year: ceremony until=+365d, one zone, default policy")
        env, policy_min = self.offline_setup(d, zones)
        self.ksk_for_all(d, env, zones)
        self.card_conf(d, 0.0001)
        wall, out = self.run([self.knot_hsm, "-c", f"{d}/knot.conf", "example.com", "ceremony", "until=+365d"], env=env)
        sigs, logins = self.counter(d)
        # monthly ceremonies (default timer): the year in 12 SKRs of until=+90d,
        # each one starting where the previous ended (what an operator runs)
        self.add("zoneyear", "one SKR until=+365d (measured, cardsim counter)", "signatures", sigs)
        self.add("zoneyear", "lib/policy figure, offline, monthly ceremonies", "signatures", policy_min or 0)
        online = self.online_per_year()
        self.add("zoneyear", "Knot >= 3.5 online mode (computed)", "signatures", online)
        weekly = 52 + self.zsk_roll_set_changes()
        self.add("zoneyear", "online signer re-signing DNSKEY weekly (computed)", "signatures", weekly)
        shutil.rmtree(d, ignore_errors=True)

    # Same arithmetic as lib/policy.c dnskey_signings_per_year() with the
    # default policy (zsk-lifetime 30d, rrsig-lifetime 21d, rrsig-refresh 10d,
    # delay = propagation-delay 1h + dnskey-ttl 1h as rendered), online.
    def policy_defaults(self):
        return dict(zsk=30 * 86400, life=21 * 86400, refresh=10 * 86400, delay=2 * 3600)

    def online_per_year(self):
        p = self.policy_defaults()
        step = p["life"] - p["refresh"]
        active, last, count = 0, 0, 1
        ev = [active + p["zsk"], active + p["zsk"] + p["delay"], active + p["zsk"] + 2 * p["delay"]]
        i = 0
        while True:
            nxt, is_ev = last + step, False
            if ev[i] <= nxt: nxt, is_ev = ev[i], True
            if nxt >= YEAR: break
            count += 1; last = nxt
            if is_ev:
                i += 1
                if i == 3:
                    active = ev[1]; ev = [active + p["zsk"], active + p["zsk"] + p["delay"], active + p["zsk"] + 2 * p["delay"]]; i = 0
        return count

    def zsk_roll_set_changes(self):
        p = self.policy_defaults()
        rolls = YEAR / (p["zsk"] + p["delay"])
        return round(2 * rolls)   # new ZSK published, old one removed

    # -- 3. zone signing ------------------------------------------------------
    def knotd_start(self, conf, log_path, env, timeout=60):
        # knotd loads its zone files before it answers on the control socket:
        # a zone of a million records needs minutes on this machine, so the
        # signing benchmark waits longer, as long as knotd is alive.
        e = dict(os.environ); e.update(env)
        p = subprocess.Popen(["knotd", "-c", conf], stdout=open(log_path, "w"), stderr=subprocess.STDOUT, env=e)
        self.knotds.append(p)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout and p.poll() is None:
            if subprocess.run(["knotc", "-c", conf, "status"], capture_output=True, env=e).returncode == 0:
                return p
            time.sleep(0.2)
        tail = open(log_path).read()[-1500:]
        raise RuntimeError(f"knotd -c {conf} does not answer after {time.monotonic() - t0:.0f} s"
                           f"{' (it exited)' if p.poll() is not None else ''}: {tail}")

    def knotd_stop(self, p):
        p.send_signal(signal.SIGTERM)
        try: p.wait(30)
        except subprocess.TimeoutExpired: p.kill(); p.wait()
        self.knotds.remove(p)

    def wait_signed(self, conf, zone, env, timeout=3600):
        e = dict(os.environ); e.update(env)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            out = subprocess.run(["knotc", "-c", conf, "zone-status", zone], capture_output=True, text=True, env=e).stdout
            if re.search(r"serial: \d+", out) and "re-sign" in out and "load" not in out.split("re-sign")[0].split("|")[-1]:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{zone} not signed")

    def sign_once(self, conf, zone, env):
        wall, _ = self.run(["knotc", "-c", conf, "-b", "-t", "7200", "zone-sign", zone], env=env)
        return wall

    def signed_rrsigs(self, conf, zone, env):
        _, out = self.run(["knotc", "-c", conf, "zone-read", zone, "@", "DNSKEY"], env=env)
        return out

    def plain_setup(self, d, zone, n, kind, port, scale=0.1):
        """kind: pem (all keys in software), softhsm (all keys on a SoftHSM
        token), cardsim (all keys on cardsim at card latency)."""
        os.makedirs(f"{d}/keys", exist_ok=True)
        env = self.env_of(d)
        ks = ""
        if kind in ("softhsm", "cardsim"):
            self.token_init(d, "softhsm under cardsim" if kind == "cardsim" else "bench")
            if kind == "cardsim":
                # knotd generates the keys with its own random CKA_ID, which a
                # SmartCard-HSM replaces (cardsim card_id = yes) and knotd then
                # cannot find them: card_id = no here, everything else as a card
                self.card_conf(d, scale, ["card_id = no"])
                _, stanza = self.run([self.knot_hsm, "keystore", "--module", self.cardsim, "--token", CARD_LABEL,
                                      "--pin-file", f"{d}/card.pin", "--id", "tok"], env=env)
            else:
                _, stanza = self.run([self.knot_hsm, "keystore", "--module", self.softhsm, "--token", "bench",
                                      "--pin-file", f"{d}/card.pin", "--id", "tok"], env=env)
            ks = stanza + "\n"
        pol = ("policy:\n  - id: p\n    algorithm: ecdsap256sha256\n" +
               ("    keystore: tok\n" if ks else ""))
        text = (f"server:\n    rundir: {d}\n    listen: 127.0.0.1@{port}\n"
                f"database:\n    storage: {d}\n    kasp-db: {d}/keys\n"
                f"log:\n  - target: {d}/knotd.log\n    any: info\n{ks}{pol}"
                f"template:\n  - id: default\n    storage: {d}\n    file: %s.zone\n"
                f"    zonefile-sync: -1\n    journal-content: none\n"
                f"zone:\n  - domain: {zone}.\n    dnssec-signing: on\n    dnssec-policy: p\n")
        open(f"{d}/knot.conf", "w").write(text)
        self.write_zone(f"{d}/{zone}.zone", zone, n)
        return env

    def bench_signing(self):
        sizes = [10000] if self.quick else [10000, 100000, 1000000]
        zone = "example.com"
        for n in sizes:
            r = 7 if n <= 10000 else (5 if n < 1000000 else 3)
            kinds = ["pem", "offline", "softhsm"]
            # The three knotds run side by side and sign in turn, so that the
            # load of this shared machine weighs on each of them alike.
            setups = {}
            try:
                for kind in kinds:
                    d = f"{self.work}/sign-{kind}-{n}"
                    port = self.free_port()
                    log(f"signing: {n} records, {kind}: setup")
                    if kind == "offline":
                        env, _ = self.offline_setup(d, [zone], port=port, zonedir=d)
                        self.ksk_for_all(d, env, [zone])
                        self.write_zone(f"{d}/{zone}.zone", zone, n)
                        self.card_conf(d, 0.001)
                        self.run([self.knot_hsm, "-c", f"{d}/knot.conf", zone, "ceremony", "until=+30d"], env=env)
                    else:
                        env = self.plain_setup(d, zone, n, kind, port)
                    p = self.knotd_start(f"{d}/knot.conf", f"{d}/knotd.out", env, timeout=1800)
                    setups[kind] = (d, env, p)
                    self.sign_once(f"{d}/knot.conf", zone, env)   # first signing (keys, load); not counted
                for rep in range(r):
                    line = []
                    for kind in kinds:
                        d, env, _ = setups[kind]
                        wall = self.sign_once(f"{d}/knot.conf", zone, env)
                        self.add("signing", f"{n}", kind, wall)
                        line.append(f"{kind} {wall:.3f} s")
                    log(f"  rep {rep + 1}/{r}: " + ", ".join(line))
            finally:
                for kind, (d, env, p) in setups.items():
                    self.knotd_stop(p)
                    shutil.rmtree(d, ignore_errors=True)
            # BIND 9.18 dnssec-signzone, software keys, same zone, one thread
            d = f"{self.work}/sign-bind-{n}"
            os.makedirs(d)
            self.write_zone(f"{d}/{zone}.zone", zone, n)
            self.run(["dnssec-keygen", "-q", "-K", d, "-a", "ECDSAP256SHA256", "-f", "KSK", zone])
            self.run(["dnssec-keygen", "-q", "-K", d, "-a", "ECDSAP256SHA256", zone])
            log(f"signing: {n} records, BIND dnssec-signzone")
            for rep in range(3):
                wall, _ = self.run(["dnssec-signzone", "-q", "-S", "-K", d, "-d", d, "-n", "1", "-O", "full", "-o", zone,
                                    "-f", f"{d}/signed", f"{d}/{zone}.zone"])
                log(f"  rep {rep + 1}/3: {wall:.3f} s")
                self.add("signing", f"{n}", "bind", wall)
            # -O full: "owner ttl IN TYPE ..."; NSEC bitmaps also say RRSIG
            sigs = sum(1 for line in open(f"{d}/signed") if line.split()[3:4] == ["RRSIG"])
            self.add("signing", f"{n}", "rrsigs", sigs)
            shutil.rmtree(d, ignore_errors=True)
        # all keys on cardsim at card latency: a small zone, extrapolated
        small, scale = (100, 0.1)
        d = f"{self.work}/sign-cardsim"
        port = self.free_port()
        log(f"signing: {small} records, all keys on cardsim (latency_scale {scale})")
        env = self.plain_setup(d, zone, small, "cardsim", port, scale)
        p = self.knotd_start(f"{d}/knot.conf", f"{d}/knotd.out", env)
        try:
            self.sign_once(f"{d}/knot.conf", zone, env)
            if os.path.exists(f"{d}/counter"): os.unlink(f"{d}/counter")
            wall = self.sign_once(f"{d}/knot.conf", zone, env)
            sigs, _ = self.counter(d)
            log(f"  {wall:.2f} s, {sigs} card signatures")
            self.add("signing_card", f"{small}", "wall_s", wall)
            self.add("signing_card", f"{small}", "signatures", sigs)
            self.add("signing_card", f"{small}", "scale", scale)
        finally:
            self.knotd_stop(p)
        shutil.rmtree(d, ignore_errors=True)

    # -- 4. onboarding ----------------------------------------------------------
    def bench_onboard(self):
        counts = [1, 10, 1000] if self.quick else [1, 10, 100, 1000]
        scale = 0.1
        for n in counts:
            for shared in (True, False):
                d = f"{self.work}/onb{n}-{shared}"
                zones = [f"o{i}.example" for i in range(n)]
                log(f"onboarding: {n} zones, {'shared KSK' if shared else 'KSK per zone'}")
                env, _ = self.offline_setup(d, zones, shared=shared)
                self.card_conf(d, scale, [f"max_keypairs = {max(300, n + 10)}"])
                # keymgr's pids, to tell its card logins from knot-hsm's
                wrapper = f"{d}/keymgr"
                with open(wrapper, "w") as w:
                    w.write(f"#!/bin/sh\necho $$ >> {d}/keymgr.pids\nexec {shutil.which('keymgr')} \"$@\"\n")
                os.chmod(wrapper, 0o755)
                case = f"{n} zones, {'one shared KSK' if shared else 'one KSK per zone'}"
                try:
                    wall, out = self.run([self.knot_hsm, "-c", f"{d}/knot.conf", *zones, "ceremony",
                                          "until=+90d", "generate-ksk=yes"], env=dict(env, KHSM_KEYMGR=wrapper))
                    _, keys = self.run(["pkcs11-tool", "--module", self.softhsm, "--token-label",
                                        "softhsm under cardsim", "--login", "--pin", PIN, "--list-objects",
                                        "--type", "privkey"], env=env)
                    slots = keys.count("Private Key Object")
                    sigs, logins = self.counter(d)
                    keymgr_pids = set(open(f"{d}/keymgr.pids").read().split()) if os.path.exists(f"{d}/keymgr.pids") else set()
                    keygens = own = 0
                    for line in open(f"{d}/counter"):
                        w = line.split()
                        if w[0] == "keygen": keygens += 1
                        elif w[:2] == ["login", "ok"] and w[2] not in keymgr_pids: own += 1
                    bound = (sigs * CARD_SIGN_MS + logins * CARD_LOGIN_MS + keygens * CARD_KEYGEN_MS) * scale / 1000
                    log(f"  {wall:.2f} s, card-bound {bound:.2f} s, ratio {wall / bound:.3f}, {slots} key slots, "
                        f"{logins} logins ({own} of knot-hsm), {sigs} signatures")
                    self.add("onboard", case, "wall_s", wall)
                    self.add("onboard", case, "card_bound_s", bound)
                    self.add("onboard", case, "ratio", wall / bound)
                    self.add("onboard", case, "zones", n)
                    self.add("onboard", case, "slots", slots)
                    self.add("onboard", case, "logins", logins)
                    self.add("onboard", case, "own_logins", own)
                    self.add("onboard", case, "scale", scale)
                except RuntimeError as e:
                    log(f"  failed: {str(e)[:300]}")
                    self.add("onboard", case, "failed", 1)
                shutil.rmtree(d, ignore_errors=True)

    # -- 5. the limits -----------------------------------------------------------
    def bench_cpu(self):
        log("software ECDSA P-256 rate (GnuTLS)")
        for rep in range(3):
            _, out = self.run([os.path.join(self.build, "ecdsa_rate"), str(os.cpu_count() or 1), "2"])
            for line in out.splitlines():
                t, rate = re.search(r"threads (\d+) .* rate ([\d.]+)", line).groups()
                self.add("cpu", f"{t} thread(s)", "rate", float(rate))

    # -- machine --------------------------------------------------------------
    def machine(self):
        def first(cmd):
            try: return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
            except Exception: return "?"
        cpu = "?"
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"): cpu = line.split(":", 1)[1].strip(); break
        k35 = "/var/cache/knot-hsm/knot35/inst/sbin/knotd"
        return {
            "uname -a": first(["uname", "-a"]),
            "CPU": f"{cpu}, {os.cpu_count()} CPUs visible (shared with other jobs)",
            "Knot": first(["knotd", "--version"]),
            "Knot 3.5 build": first([k35, "--version"]) if os.path.exists(k35) else "not built",
            "GnuTLS": first(["dpkg-query", "-W", "-f=${Version}", "libgnutls30"]),
            "SoftHSM": first(["softhsm2-util", "--version"]),
            "BIND": "dnssec-signzone " + first(["dpkg-query", "-W", "-f=${Version}", "bind9-utils"]),
            "knot-hsm": first(["git", "-C", self.top, "describe", "--always", "--dirty"]),
        }

    def main(self):
        started = time.time()
        # The commit built at the start: the tree may change while the run lasts.
        version = subprocess.run(["git", "-C", self.top, "describe", "--always", "--dirty"],
                                 capture_output=True, text=True).stdout.strip() or "?"
        try:
            steps = [("cpu", self.bench_cpu), ("ceremony", self.bench_ceremony), ("cards", self.bench_cards),
                     ("zoneyear", self.bench_zoneyear),
                     ("signing", self.bench_signing), ("onboard", self.bench_onboard)]
            for name, fn in steps:
                if self.only is None or name in self.only:
                    try:
                        fn()
                    except Exception as e:   # report what was measured, say what failed
                        log(f"{name} failed: {e}")
                        # the reason: knot-hsm's "error:" line, else the first line
                        lines = str(e).splitlines()
                        why = next((l for l in lines if l.startswith("error:")), lines[0] if lines else "?")
                        self.add("failed", name, why[:300], 1)
                    finally:
                        for p in list(self.knotds):
                            self.knotd_stop(p)
        finally:
            for p in list(self.knotds):
                self.knotd_stop(p)
        meta = self.machine()
        meta["knot-hsm"] = version
        meta["run"] = (f"bench/run.sh{' --quick' if self.quick else ''} on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
                       f"{(time.time() - started) / 60:.1f} min")
        sys.path.insert(0, os.path.dirname(__file__))
        import report
        try:
            failed = report.write(self.results, meta, self.top, self.quick, self.work)
        finally:
            shutil.rmtree(self.work, ignore_errors=True)
        if self.check and failed:
            for f in failed: print(f"check failed: {f}", file=sys.stderr)
            return 1
        return 0

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", required=True); ap.add_argument("--build", required=True)
    ap.add_argument("--quick", action="store_true"); ap.add_argument("--check", action="store_true")
    ap.add_argument("--only", help="comma-separated: cpu,ceremony,cards,zoneyear,signing,onboard (development)")
    sys.exit(Bench(ap.parse_args()).main())
