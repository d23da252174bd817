from app import AnomalyMapApp

if __name__ == "__main__":
    AnomalyMapApp().run()
