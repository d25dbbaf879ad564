-- Forward every stable study from Orthanc to the cadp-med node for de-identification.
--
-- Load it with "LuaScripts": ["/path/to/cadp_forward.lua"] in orthanc.json, and name the
-- node in "DicomModalities" as "cadp" (see pipelines/orthanc/orthanc.json).  Orthanc
-- calls OnStableStudy once no instance of a study arrived for "StableAge" seconds.
--
-- Why not SendToModality(studyId, 'cadp')?  In Orthanc's Lua API that call queues a
-- per-instance store job: given a study id it fails ("Unable to read attachment dicom
-- of instance <study id>") and reports nothing back to the script.  POST
-- /modalities/<name>/store with the study id sends every instance of the study on one
-- association, synchronously, and answers how many failed, so the delete below only
-- ever happens after the node acknowledged the whole study.
--
-- DELETE_AFTER_SEND: remove the study from this Orthanc once the node acknowledged every
-- instance.  Keep it false while you validate the pipeline; true keeps no PHI here.

local CADP_MODALITY = 'cadp'
local DELETE_AFTER_SEND = false

function OnStableStudy(studyId, tags, metadata)
   -- Log lines name the Orthanc resource id only: tags hold PHI.
   local ok, answer = pcall(RestApiPost, '/modalities/' .. CADP_MODALITY .. '/store', studyId)
   if not ok or answer == nil or answer == '' then
      print('cadp_forward: sending study ' .. studyId .. ' to cadp-med failed; kept')
      return
   end
   local result = ParseJson(answer)
   if result['FailedInstancesCount'] ~= nil and result['FailedInstancesCount'] ~= 0 then
      print('cadp_forward: ' .. result['FailedInstancesCount'] .. ' instances of study '
            .. studyId .. ' were not accepted; kept')
      return
   end
   print('cadp_forward: study ' .. studyId .. ' sent to cadp-med')
   if DELETE_AFTER_SEND then
      Delete(studyId)
   end
end
