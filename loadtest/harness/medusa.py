"""Medusa v2, the flash-sale's peer: a real commerce engine a shop would pick instead,
on the same PostgreSQL and Redis. `loadtest/medusa/install` puts it outside the repo
(~/.cache/flashgate/medusa, database `flashgate_medusa`, Redis DB 5); this module
starts it on 127.0.0.1:18130, seeds a sale through its admin API (a product of one
variant whose inventory holds the sale's stock, sold through a publishable key of its
own sales channel, in an EUR region paid with the system payment provider) and reads
what was sold from its database. Standard library only.

A shopper (loadtest/k6/flash-sale.js, SYSTEM=medusa) creates a cart, adds the variant,
creates the payment collection and a `pp_system_default` session and completes the cart.
"""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

HOST = "127.0.0.1"
PORT = 18130
URL = f"http://{HOST}:{PORT}"
HOME = os.environ.get("MEDUSA_HOME", os.path.expanduser("~/.cache/flashgate/medusa"))
DATABASE = "flashgate_medusa"
DATABASE_URL = f"postgres://postgres@{HOST}:5432/{DATABASE}"
REDIS_URL = "redis://127.0.0.1:6379/5"  # a DB index of its own: nothing of the project's
ADMIN_EMAIL = "admin@flashgate.loadtest"  # created by loadtest/medusa/install
ADMIN_PASSWORD = "flashgate-loadtest"
PROVIDER = "pp_system_default"
PRICE = 49  # Medusa v2 stores amounts in the currency's main unit: €49.00, flashgate's 4900 cents
NAME = "flashgate-loadtest"  # the sales channel, region, stock location and key shared by every sale
COUNTRY = "de"


def installed():
    """Whether loadtest/medusa/install has run to the end (packages, migrations, admin)."""
    return (os.path.isfile(os.path.join(HOME, "node_modules", ".bin", "medusa"))
            and os.path.isfile(os.path.join(HOME, ".migrated"))
            and os.path.isfile(os.path.join(HOME, "medusa-config.js")))


def env():
    """The environment Medusa runs with: production, no telemetry, its own database and Redis DB."""
    return dict(os.environ, NODE_ENV="production", MEDUSA_DISABLE_TELEMETRY="true",
                DATABASE_URL=DATABASE_URL, REDIS_URL=REDIS_URL, LOG_LEVEL=os.environ.get("MEDUSA_LOG_LEVEL", "warn"))


def start(log_path, timeout=120):
    """Starts `medusa start` (one process, production mode) on 127.0.0.1:18130 and waits for
    GET /health; raises with the log's tail if it does not answer within `timeout` s."""
    if not installed():
        raise RuntimeError(f"Medusa is not installed in {HOME}: run loadtest/medusa/install")
    log = open(log_path, "ab")
    proc = subprocess.Popen([os.path.join(HOME, "node_modules", ".bin", "medusa"), "start",
                             "--host", HOST, "--port", str(PORT)],
                            cwd=HOME, env=env(), stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"medusa exited ({proc.returncode}) while starting:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{URL}/health", timeout=2) as response:
                if response.status == 200:
                    return proc
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"medusa did not answer {URL}/health within {timeout} s:\n{_tail(log_path)}")


def stop(proc):
    """SIGTERM to Medusa's process group, SIGKILL after 15 s."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _tail(path, lines=30):
    try:
        with open(path, "rb") as f:
            return b"".join(f.readlines()[-lines:]).decode(errors="replace")
    except OSError:
        return "(no log)"


class _Admin:
    """The admin API with a bearer token of the install's admin user."""

    def __init__(self):
        self.token = None
        self.token = self.call("POST", "/auth/user/emailpass",
                               {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})["token"]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{URL}{path}", data=data, method=method)
        request.add_header("content-type", "application/json")
        if self.token:
            request.add_header("authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                text = response.read()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"medusa {method} {path}: {e.code} {e.read().decode(errors='replace')[:500]}")
        return json.loads(text) if text else {}

    def find(self, path, key, **query):
        """The first of `key` listed by GET path?query, or None."""
        qs = "&".join(f"{k}={urllib.request.quote(str(v))}" for k, v in query.items())
        found = self.call("GET", f"{path}?{qs}&limit=100")[key]
        return found[0] if found else None


def _shared(admin):
    """The sales channel, region, stock location and publishable key every sale shares."""
    channel = admin.find("/admin/sales-channels", "sales_channels", name=NAME)
    if channel is None:
        channel = admin.call("POST", "/admin/sales-channels", {"name": NAME})["sales_channel"]
    region = admin.find("/admin/regions", "regions", name=NAME)
    if region is None:
        region = admin.call("POST", "/admin/regions", {
            "name": NAME, "currency_code": "eur", "countries": [COUNTRY], "automatic_taxes": False,
            "payment_providers": [PROVIDER]})["region"]
    location = admin.find("/admin/stock-locations", "stock_locations", name=NAME)
    if location is None:
        location = admin.call("POST", "/admin/stock-locations", {"name": NAME})["stock_location"]
        admin.call("POST", f"/admin/stock-locations/{location['id']}/sales-channels", {"add": [channel["id"]]})
    key = admin.find("/admin/api-keys", "api_keys", title=NAME, type="publishable")
    if key is None or key.get("revoked_at"):
        key = admin.call("POST", "/admin/api-keys", {"title": NAME, "type": "publishable"})["api_key"]
        admin.call("POST", f"/admin/api-keys/{key['id']}/sales-channels", {"add": [channel["id"]]})
    return channel, region, location, key


def _handle(sale):
    return f"lt-{sale}"


def _psql(sql, *args):
    argv = ["psql", "-h", HOST, "-U", "postgres", "-d", DATABASE, "-tAXq", "-v", "ON_ERROR_STOP=1",
            "-F", "\t"]
    for i, arg in enumerate(args):
        argv += ["-v", f"a{i}={arg}"]
    out = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"psql on {DATABASE}: {out.stderr.strip()}")
    return [line.split("\t") for line in out.stdout.splitlines() if line]


_PRODUCT_SQL = """
select p.id, v.id, l.inventory_item_id
  from product p
  join product_variant v on v.product_id = p.id and v.deleted_at is null
  left join product_variant_inventory_item l on l.variant_id = v.id and l.deleted_at is null
 where p.handle = :'a0' and p.deleted_at is null
"""

_ORDERS_SQL = """
select count(distinct o.id), coalesce(sum(oi.quantity), 0)::bigint
  from "order" o
  join order_item oi on oi.order_id = o.id and oi.version = o.version and oi.deleted_at is null
  join order_line_item li on li.id = oi.item_id
 where li.variant_id = :'a0' and o.deleted_at is null and o.canceled_at is null
"""


def seed(sale, stock):
    """A fresh sale of `stock` units: product `lt-<sale>` with one variant (manage_inventory,
    €49), its inventory item holding `stock` at the shared location, no shipping needed (the
    inventory item does not require shipping, like flashgate's sale, which ships nothing).
    Idempotent: a product of that sale without orders is reused with its level set to
    `stock`; one with orders is retired (renamed, made a draft) and the sale made anew. Returns what a shopper needs:
    {publishable_key, region_id, variant_id, product_id, inventory_item_id, location_id,
    sales_channel_id, stock}."""
    admin = _Admin()
    channel, region, location, key = _shared(admin)
    product = admin.find("/admin/products", "products", handle=_handle(sale))
    if product is not None:
        variant_id = product["variants"][0]["id"]
        if int(_psql(_ORDERS_SQL, variant_id)[0][0]) > 0:
            # Its orders keep their reservations, so Medusa will not delete it: retire it
            # (another handle, a draft, out of the store) and make the sale anew.
            admin.call("POST", f"/admin/products/{product['id']}",
                       {"handle": f"{_handle(sale)}-retired-{int(time.time() * 1000)}", "status": "draft"})
            product = None
    if product is None:
        product = admin.call("POST", "/admin/products", {
            "title": f"Load-test drop {sale}", "handle": _handle(sale), "status": "published",
            "sales_channels": [{"id": channel["id"]}],
            "options": [{"title": "Size", "values": ["One size"]}],
            "variants": [{"title": "One size", "sku": f"{_handle(sale)}-{int(time.time())}",
                          "manage_inventory": True, "allow_backorder": False,
                          "options": {"Size": "One size"},
                          "prices": [{"currency_code": "eur", "amount": PRICE}]}],
        })["product"]
    variant_id = product["variants"][0]["id"]
    _, _, item_id = _psql(_PRODUCT_SQL, _handle(sale))[0]
    admin.call("POST", f"/admin/inventory-items/{item_id}", {"requires_shipping": False})
    levels = admin.call("GET", f"/admin/inventory-items/{item_id}/location-levels")["inventory_levels"]
    if any(level["location_id"] == location["id"] for level in levels):
        admin.call("POST", f"/admin/inventory-items/{item_id}/location-levels/{location['id']}",
                   {"stocked_quantity": stock})
    else:
        admin.call("POST", f"/admin/inventory-items/{item_id}/location-levels",
                   {"location_id": location["id"], "stocked_quantity": stock})
    return {"publishable_key": key["token"], "region_id": region["id"], "variant_id": variant_id,
            "product_id": product["id"], "inventory_item_id": item_id, "location_id": location["id"],
            "sales_channel_id": channel["id"], "stock": stock}


def k6_env(seeded):
    """The k6 environment of flash-sale.js's SYSTEM=medusa shoppers for a seeded sale."""
    return {"SYSTEM": "medusa", "MEDUSA": URL, "MEDUSA_KEY": seeded["publishable_key"],
            "MEDUSA_REGION": seeded["region_id"], "MEDUSA_VARIANT": seeded["variant_id"]}


def sold(sale):
    """What Medusa sold of `sale`, from its database: {orders, units, stocked, reserved,
    oversold}. Completed carts reserve their units (reserved_quantity) until fulfilment, so
    units sold = reserved; oversold when units > stocked or reserved != units."""
    rows = _psql(_PRODUCT_SQL, _handle(sale))
    if not rows:
        raise RuntimeError(f"no Medusa product for sale {sale}")
    _, variant_id, item_id = rows[0]
    orders, units = (int(x) for x in _psql(_ORDERS_SQL, variant_id)[0])
    stocked, reserved = (int(x) for x in _psql(
        "select coalesce(sum(stocked_quantity), 0)::bigint, coalesce(sum(reserved_quantity), 0)::bigint from inventory_level"
        " where inventory_item_id = :'a0' and deleted_at is null", item_id)[0])
    return {"orders": orders, "units": units, "stocked": stocked, "reserved": reserved,
            "oversold": units > stocked or reserved > stocked}
