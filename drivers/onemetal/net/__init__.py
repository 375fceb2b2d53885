"""ovswitch_vxlan_unicast: a full mesh of unicast VXLAN tunnels over Open vSwitch."""
