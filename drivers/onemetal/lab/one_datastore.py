"""The datastore documents oned hands the DS and TM drivers, for the demo and the oned double:
the DATASTORE (Datastore::to_xml, one.datastore.info and the VMM MAD's ds.xml), the IMAGE
(Image::to_xml) and DS_DRIVER_ACTION_DATA (ImageManager::format_message). Values are
escaped as in one_docs.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from lxml import etree

from onemetal.lab.one_vm import STIME, Value, cdata, leaf, template


@dataclass(frozen=True)
class OneImage:
    image_id: int
    name: str
    path: str
    format: str = "qcow2"
    size_mb: int = 0
    source: str = ""


def ds_xml(ds_id: int, name: str, *, base_path: str, ds_mad: str = "onemetal",
           tm_mad: str = "onemetal", ds_type: str = "IMAGE_DS") -> str:
    """Datastore::to_xml (one.datastore.info; the VMM MAD's ds.xml)."""
    kind = {"IMAGE_DS": 0, "SYSTEM_DS": 1, "FILE_DS": 2}[ds_type]
    attrs: list[tuple[str, Value]] = [("TYPE", ds_type), ("TM_MAD", tm_mad),
                                      ("ALLOW_ORPHANS", "NO"), ("SHARED", "YES")]
    if ds_type != "SYSTEM_DS":  # a system datastore takes no DS_MAD; oned shows it as "-"
        attrs.append(("DS_MAD", ds_mad))
    return ("<DATASTORE>" + "".join(leaf(k, v) for k, v in (
        ("ID", ds_id), ("UID", 0), ("GID", 0), ("UNAME", "oneadmin"), ("GNAME", "oneadmin"),
        ("NAME", name)))
        + "<PERMISSIONS><OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A>"
        "<GROUP_U>1</GROUP_U><GROUP_M>0</GROUP_M><GROUP_A>0</GROUP_A><OTHER_U>0</OTHER_U>"
        "<OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A></PERMISSIONS>"
        + f"<DS_MAD>{cdata(ds_mad if ds_type != 'SYSTEM_DS' else '-')}</DS_MAD>"
        + f"<TM_MAD>{cdata(tm_mad)}</TM_MAD><BASE_PATH>{cdata(base_path)}</BASE_PATH>"
        + f"<TYPE>{kind}</TYPE><DISK_TYPE>0</DISK_TYPE><STATE>0</STATE>"
        "<CLUSTERS><ID>0</ID></CLUSTERS><TOTAL_MB>0</TOTAL_MB><FREE_MB>0</FREE_MB>"
        "<USED_MB>0</USED_MB><IMAGES/>" + template("TEMPLATE", attrs) + "</DATASTORE>")


def image_xml(image: OneImage, ds_id: int, ds_name: str) -> str:
    """Image::to_xml, the image as the DS action gets it (LOCKED until cp answers)."""
    fields = (("ID", image.image_id), ("UID", 2), ("GID", 100), ("UNAME", "tenant"),
              ("GNAME", "eip-users"), ("NAME", image.name))
    return ("<IMAGE>" + "".join(leaf(k, v) for k, v in fields)
            + "<TYPE>0</TYPE><DISK_TYPE>0</DISK_TYPE><PERSISTENT>0</PERSISTENT>"
            f"<REGTIME>{STIME}</REGTIME><MODTIME>0</MODTIME>"
            f"<SOURCE>{cdata(image.source)}</SOURCE><PATH>{cdata(image.path)}</PATH>"
            f"<FORMAT>{cdata(image.format)}</FORMAT><FS>{cdata('')}</FS>"
            f"<SIZE>{image.size_mb}</SIZE><STATE>4</STATE><PREV_STATE>0</PREV_STATE>"
            "<RUNNING_VMS>0</RUNNING_VMS><CLONING_OPS>0</CLONING_OPS><CLONING_ID>-1</CLONING_ID>"
            f"<TARGET_SNAPSHOT>-1</TARGET_SNAPSHOT><DATASTORE_ID>{ds_id}</DATASTORE_ID>"
            + leaf("DATASTORE", ds_name) + "<VMS/><CLONES/><APP_CLONES/>"
            + template("TEMPLATE", [("DEV_PREFIX", "vd")]) + "<SNAPSHOTS/></IMAGE>")


def ds_action_data(datastore_xml: str, image: OneImage | None = None, *, location: str = "",
                   monitor_vm_disks: bool | None = None) -> str:
    """ImageManager::format_message (before base64): the IMAGE (cp, rm, ...), the DATASTORE,
    then for a shared system datastore's monitor DATASTORE_LOCATION and MONITOR_VM_DISKS."""
    body = ""
    if image is not None:
        ds = etree.fromstring(datastore_xml.encode())
        body = image_xml(image, int(ds.findtext("ID")), ds.findtext("NAME") or "")
    extra = f"<DATASTORE_LOCATION>{escape(location)}</DATASTORE_LOCATION>" if location else ""
    if monitor_vm_disks is not None:
        extra += f"<MONITOR_VM_DISKS>{int(monitor_vm_disks)}</MONITOR_VM_DISKS>"
    return f"<DS_DRIVER_ACTION_DATA>{body}{datastore_xml}{extra}</DS_DRIVER_ACTION_DATA>"
