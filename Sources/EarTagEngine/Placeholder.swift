// EarTagEngine: placeholder until its first real source lands.
