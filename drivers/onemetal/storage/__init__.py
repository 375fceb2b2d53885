"""Storage: the NFS/EFS mount policy and write-gate, and the datastore and transfer drivers."""
