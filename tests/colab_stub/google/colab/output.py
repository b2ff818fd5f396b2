"""The one function of ``google.colab.output`` that lic_teach calls; it records the
call."""

custom_widget_manager_enabled = False


def enable_custom_widget_manager():
    global custom_widget_manager_enabled
    custom_widget_manager_enabled = True
