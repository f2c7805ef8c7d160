"""students/ssdlite"""
