// EarTagEvents: placeholder until its first real source lands.
