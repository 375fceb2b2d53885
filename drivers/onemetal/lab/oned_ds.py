"""oned's DS MAD (src/datastore_mad/one_datastore.rb), for the lab's oned double.

An action runs on the frontend as oneadmin: remotes/datastore/<ds_mad>/<action> <id>,
its stdin the DS_DRIVER_ACTION_DATA document in base64 exactly as oned sent it to the
MAD (one line, no trailing newline). The monitor of a system datastore (TYPE 1) runs
the TM's instead, remotes/tm/<TM_MAD>/monitor, as the MAD routes it.
"""

from __future__ import annotations

from xml.etree import ElementTree

from onemetal.lab.frontend_host import REMOTES
from onemetal.lab.lab import Lab
from onemetal.lab.oned_tm import run_local
from onemetal.lab.samples import b64
from onemetal.run import Result


def script(action: str, payload_xml: str, ds_mad: str) -> str:
    """get_ds_type and do_image_action: which script the MAD runs for `action`."""
    ds = ElementTree.fromstring(payload_xml).find("DATASTORE")
    if action.lower() == "monitor" and ds is not None and ds.findtext("TYPE") == "1":
        return f"{REMOTES}/tm/{ds.findtext('TM_MAD') or ''}/monitor"
    return f"{REMOTES}/datastore/{ds_mad}/{action.lower()}"


def ds_action(lab: Lab, action: str, ds_id: int, payload_xml: str, *,
              ds_mad: str = "onemetal") -> Result:
    return run_local(lab, script(action, payload_xml, ds_mad), [str(ds_id)], b64(payload_xml))
