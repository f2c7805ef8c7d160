"""students/yolo"""
