print("eartag: under construction")
