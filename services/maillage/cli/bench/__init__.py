"""`maillage bench`: gateway throughput, referral latency and on-call alert latency, measured on real servers."""
