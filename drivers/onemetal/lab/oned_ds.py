"""oned's DS MAD (src/datastore_mad/one_datastore.rb), for the lab's oned double.

An action runs on the frontend as oneadmin: remotes/datastore/<DS_MAD>/<action> <id>, the
DS_MAD read from the DS_DRIVER_ACTION_DATA document, its stdin that document in base64
exactly as oned sent it to the MAD (one line, no trailing newline). The monitor of a system
datastore (TYPE 1) runs the TM's instead, remotes/tm/<TM_MAD>/monitor, as the MAD routes it.
A driver without its remotes directory is refused without running anything, as the MAD
refuses one missing from its -t / -s lists.
"""

from __future__ import annotations

import os
from xml.etree import ElementTree

from onemetal.lab.frontend_host import REMOTES, frontend
from onemetal.lab.lab import Lab
from onemetal.lab.oned_tm import failed, run_local
from onemetal.lab.samples import b64
from onemetal.run import Result


def route(action: str, payload_xml: str) -> tuple[str, str]:
    """get_ds_type and do_image_action: (what the MAD calls the driver, its directory or "")."""
    ds = ElementTree.fromstring(payload_xml).find("DATASTORE")
    ds_mad = (ds.findtext("DS_MAD") if ds is not None else None) or ""
    sys_mad = (ds.findtext("TM_MAD") or "") if ds is not None and ds.findtext("TYPE") == "1" else ""
    if action.lower() == "monitor" and sys_mad:
        return f"System datastore driver '{sys_mad}'", f"{REMOTES}/tm/{sys_mad}"
    return f"Datastore driver '{ds_mad}'", f"{REMOTES}/datastore/{ds_mad}" if ds_mad else ""


def ds_action(lab: Lab, action: str, ds_id: int, payload_xml: str) -> Result:
    driver, base = route(action, payload_xml)
    if not base or not os.path.isdir(frontend(lab).path(base)):
        return failed([action, str(ds_id)], f"{driver} not available")
    return run_local(lab, f"{base}/{action.lower()}", [str(ds_id)], b64(payload_xml))
