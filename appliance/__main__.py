from appliance.launch import main

main()
