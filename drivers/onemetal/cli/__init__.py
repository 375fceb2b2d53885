"""Command-line tools: onemetal (install, demo) and onenat (NAT and Elastic IPs)."""
