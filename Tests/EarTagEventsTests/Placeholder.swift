// EarTagEventsTests: placeholder.
