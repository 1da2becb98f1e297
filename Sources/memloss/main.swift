print("memloss")
